#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <caf/actor_control_block.hpp>

#include "tcpactor/bytes.hpp"
#include "tcpactor/fwd.hpp"
#include "tcpactor/tls.hpp"

namespace tcpactor {

/// Who is on the other end of a Unix-domain socket, as the kernel saw it
/// when the peer connected (SO_PEERCRED).
struct peer_credentials {
  int32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

/// Handle to one accepted connection: who is on the other end, and a way to
/// write to or close it from any thread. Cheap to copy; a copy that outlives
/// the connection stays safe (writes then return false).
class caller {
public:
  caller() = default;

  /// Unique for the process lifetime.
  connection_id id() const noexcept;

  /// The peer's address. Over a Unix-domain socket, whose clients are
  /// normally unnamed, the socket's path on both sides (the listener's
  /// `unix_path`, "@name" for an abstract one), and the ports are 0.
  std::string remote_host() const;
  uint16_t remote_port() const noexcept;
  std::string local_host() const;
  uint16_t local_port() const noexcept;

  /// The connecting process's pid, uid and gid over a Unix-domain socket
  /// (e.g. to admit only some users); nothing over TCP or once closed.
  std::optional<tcpactor::peer_credentials> peer_credentials() const;

  /// What the TLS handshake agreed on, including the client certificate's
  /// subject with mutual TLS; empty for plain TCP.
  const tls_info& tls() const noexcept;

  /// Queues `data` for writing after everything queued before. Returns false
  /// if the connection is closing or closed.
  bool write(bytes data) const;

  /// Flushes what is queued, then closes; the actor sees `closed` last.
  void close() const;

  /// Flushes what is queued, then ends the write side (FIN; TLS sends
  /// close_notify first). Reading goes on; once the peer ends too, the
  /// connection closes. Later writes return false.
  void shutdown_write() const;

  /// True once the listener began draining: finish what is in flight and
  /// close when convenient.
  bool draining() const noexcept;

  /// Runs `fn` in the connection's actor when its listener begins to drain.
  /// Call it from that actor (e.g. in the connect handler).
  void on_drain(std::function<void()> fn) const;

  /// The connection's transport as an actor handle: it takes
  /// `(write_atom, bytes)` and `(close_atom)` like the connection actor.
  /// Monitor it to learn when the socket closed and why (the `down_msg`
  /// carries the close reason); links to it are not supported.
  const caf::strong_actor_ptr& transport() const noexcept { return ptr_; }

  explicit operator bool() const noexcept { return static_cast<bool>(ptr_); }

  /// @private
  explicit caller(caf::strong_actor_ptr ptr) : ptr_(std::move(ptr)) {
    // nop
  }

private:
  caf::strong_actor_ptr ptr_;
};

} // namespace tcpactor
