#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <caf/actor_control_block.hpp>
#include <caf/actor_system.hpp>

#include <boost/asio/thread_pool.hpp>

#include <caf/expected.hpp>

#include "io_pool.hpp"
#include "metrics_registry.hpp"
#include "tcpactor/runtime.hpp"

namespace tcpactor {

class socket_manager;
class tls_context;
struct tls_config;

/// Told on the I/O loop once a transport it made closed, with the reason
/// (none for an orderly close). One observer (a listener) serves all its
/// connections. The runtime holds it weakly under its tag and a transport
/// carries only the tag: a weak pointer each would cost 16 bytes, a closure
/// each 80.
class finish_observer {
public:
  finish_observer();
  virtual ~finish_observer() = default;
  virtual void on_finished(socket_manager& t, const caf::error& reason) = 0;
  /// Adds the certificates it serves, for runtime::metrics().
  virtual void certificates(std::vector<certificate_expiry>& out) const {
    static_cast<void>(out);
  }
  /// Unique for the process, unlike an address a later listener may reuse.
  const uint64_t tag;
};

struct runtime::impl {
  impl(caf::actor_system& sys, runtime_config cfg, std::size_t threads)
      : sys(sys), cfg(cfg), pool(threads, sys, *this) {
    // nop
  }

  caf::actor_system& sys;
  runtime_config cfg;
  // Before the pool: its threads count into it until they are joined.
  metrics_registry metrics;
  io_pool pool;

  /// Keeps every live transport reachable (and alive: the registry holds a
  /// reference) so shutdown can close it; a transport leaves when it
  /// finishes. The list runs through the transports themselves: a hash node
  /// per connection here and another in its listener cost 80 bytes.
  void add(socket_manager* t);
  void remove(socket_manager* t);

  /// The live transports a listener made (`owner`: its tag), leaving out
  /// those whose finish() already told the listener.
  std::vector<caf::strong_actor_ptr> owned_by(uint64_t owner) const;

  /// Makes `obs` the observer of the transports made with its tag, until
  /// `forget` or its end.
  void observe(const std::shared_ptr<finish_observer>& obs);
  void forget(uint64_t tag);
  /// The observer registered under `tag`, if it still lives.
  std::shared_ptr<finish_observer> observer(uint64_t tag) const;

  /// Registers a shutdown hook (listeners); returns a token for `unhook`.
  uint64_t hook(std::function<void()> fn);
  void unhook(uint64_t token);

  std::size_t live() const;

  /// The counters summed, plus the certificates of the live listeners.
  runtime_metrics snapshot() const;

  /// Threads for TLS handshakes, so a slow key exchange never holds up the
  /// other sockets of an I/O loop. Started on first use.
  asio::thread_pool& crypto();

  /// The client TLS context for `cfg`: built once per distinct
  /// configuration, so a reconnect neither re-reads files nor loses the
  /// session it may resume.
  caf::expected<std::shared_ptr<tls_context>> client_tls(const tls_config& cfg);

  /// True once shutdown began: new sockets are refused.
  bool stopping() const;

  void shutdown();

private:
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  /// Holds all transports; pass `fn` a strong reference to each.
  template <class F>
  void for_each_locked(F fn) const;
  std::vector<caf::strong_actor_ptr> all_locked() const;

  socket_manager* head_ = nullptr; // the registry: transport::reg_next_ links
  std::size_t live_ = 0;
  std::unordered_map<uint64_t, std::function<void()>> hooks_;
  std::unordered_map<uint64_t, std::weak_ptr<finish_observer>> observers_;
  uint64_t next_hook_ = 0;
  std::unique_ptr<asio::thread_pool> crypto_;
  std::mutex tls_mtx_;
  std::map<std::string, std::shared_ptr<tls_context>> client_tls_;
  bool stopping_ = false;
  bool stopped_ = false;
};

} // namespace tcpactor
