#pragma once

#include <atomic>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "asio_glue.hpp"
#include "loop_unit.hpp"
#include "tcpactor/runtime.hpp"
#include "timeouts.hpp"

namespace tcpactor {

/// One event loop per thread, like Netty's event-loop group: every socket
/// lives on one loop for its whole life, so its handlers never race and need
/// no strand.
class io_pool {
public:
  /// What a socket on one loop needs from the runtime, in one place: each
  /// transport keeps a pointer to this instead of four.
  struct loop_context {
    asio::io_context* loop;
    timeouts* sweep; // the loop's deadline sweep
    loop_unit* unit; // the loop as a CAF execution unit
    runtime::impl* rt;
  };

  io_pool(std::size_t threads, caf::actor_system& sys, runtime::impl& rt);
  ~io_pool();

  io_pool(const io_pool&) = delete;
  io_pool& operator=(const io_pool&) = delete;

  /// Round-robin choice of a loop for a new socket.
  asio::io_context& next() noexcept;

  std::size_t size() const noexcept { return loops_.size(); }

  /// Loop `i` (< size()).
  asio::io_context& at(std::size_t i) const noexcept { return *loops_[i]; }

  /// The context of `loop`, one of ours.
  const loop_context& context_of(asio::io_context& loop) const noexcept;

  /// Stops the loops and joins their threads. Idempotent.
  void stop();

private:
  using guard_type = asio::executor_work_guard<asio::io_context::executor_type>;
  std::vector<std::unique_ptr<asio::io_context>> loops_;
  // One per loop, same index; destroyed before the loops.
  std::vector<std::unique_ptr<timeouts>> timeouts_;
  std::vector<std::unique_ptr<loop_unit>> units_;
  std::vector<loop_context> contexts_; // same index; never resized
  std::vector<guard_type> guards_;
  std::vector<std::thread> threads_;
  std::vector<std::future<void>> done_; // ready once a loop ran out of work
  std::atomic<std::size_t> next_{0};
};

} // namespace tcpactor
