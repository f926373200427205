#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <unordered_map>

#include <caf/actor_control_block.hpp>
#include <caf/actor_system.hpp>

#include "io_pool.hpp"
#include "tcpactor/runtime.hpp"

namespace tcpactor {

class transport;

struct runtime::impl {
  impl(caf::actor_system& sys, runtime_config cfg, std::size_t threads)
      : sys(sys), cfg(cfg), pool(threads) {
    // nop
  }

  caf::actor_system& sys;
  runtime_config cfg;
  io_pool pool;

  /// Keeps every live transport reachable so shutdown can close it; a
  /// transport leaves when it finishes.
  void add(transport* t, caf::strong_actor_ptr ptr);
  void remove(transport* t);

  /// Registers a shutdown hook (listeners); returns a token for `unhook`.
  uint64_t hook(std::function<void()> fn);
  void unhook(uint64_t token);

  std::size_t live() const;

  /// True once shutdown began: new sockets are refused.
  bool stopping() const;

  void shutdown();

private:
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::unordered_map<transport*, caf::strong_actor_ptr> transports_;
  std::unordered_map<uint64_t, std::function<void()>> hooks_;
  uint64_t next_hook_ = 0;
  bool stopping_ = false;
  bool stopped_ = false;
};

} // namespace tcpactor
