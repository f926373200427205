#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "tcpactor/backend.hpp"
#include "tcpactor/connection.hpp"

namespace tcpactor {

/// Which back end a new connection gets.
enum class backend_policy : uint8_t {
  /// The next one that is up, in turn.
  round_robin,
  /// The one serving the fewest connections now (ties: in turn).
  least_connections,
};

struct backend_pool_config {
  /// Nodes that publish a `backend_actor` (at least one).
  std::vector<backend_endpoint> backends;
  backend_policy policy = backend_policy::round_robin;
  /// A chunk unanswered this long fails its connection (`backend_down`).
  std::chrono::milliseconds request_timeout{10'000};
  /// One attempt to reach a node (TCP, TLS and BASP handshake).
  std::chrono::milliseconds connect_timeout{5'000};
  /// First wait before reconnecting a node that failed or went down; each
  /// failed attempt doubles it, up to `max_backoff`. Attempts never stop, so
  /// a node that comes back is used again.
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5'000};

  /// Names the field that is out of range.
  caf::error validate() const;
};

/// One back end as the pool sees it.
struct backend_status {
  backend_endpoint endpoint;
  /// Linked and usable for new connections.
  bool up = false;
  /// Connections it serves now.
  uint64_t connections = 0;
  /// Connections assigned to it since the pool started.
  uint64_t assigned = 0;
  /// Times it went down or could not be reached.
  uint64_t failures = 0;
  /// Why it is (or last was) down; empty if it never failed.
  std::string last_error;
};

/// Back-end nodes shared by the connections of one or more listeners. A
/// connection is assigned one node when it opens and keeps it for its
/// lifetime: each chunk (or frame) becomes a request to that node's service
/// and the reply is written back, in order. If the node goes down, its link
/// drops or a request times out, the connection fails with `backend_down`
/// (its actor sees `(error_atom, backend_down)`, then `closed`). New
/// connections go to the nodes that are up; with none up they are refused
/// with `backend_down`. The pool reconnects to lost nodes in the background.
/// Needs an actor system prepared with `configure_node`.
class backend_pool {
public:
  struct impl;

  /// Validates `cfg` and starts linking to every node; does not wait.
  static caf::expected<backend_pool> make(caf::actor_system& sys,
                                          backend_pool_config cfg);

  backend_pool(backend_pool&&) noexcept;
  backend_pool& operator=(backend_pool&&) noexcept;
  /// Stops reconnecting; connections keep their nodes until they close.
  ~backend_pool();

  /// A connect handler for `spawn_listener` that assigns and forwards.
  connect_handler handler() const;

  /// Waits until `n` nodes are up, at most `timeout`; returns how many are.
  std::size_t wait_until_up(std::size_t n,
                            std::chrono::milliseconds timeout) const;

  std::vector<backend_status> status() const;

private:
  explicit backend_pool(std::shared_ptr<impl> ptr);

  std::shared_ptr<impl> impl_;
};

} // namespace tcpactor
