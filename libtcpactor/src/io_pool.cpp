#include "io_pool.hpp"

#include <chrono>
#include <future>
#include <string>

#include <pthread.h>

#include "tcpactor/log.hpp"

namespace tcpactor {

io_pool::io_pool(std::size_t threads, caf::actor_system& sys,
                 runtime::impl& rt) {
  for (std::size_t i = 0; i < threads; ++i) {
    // Concurrency hint 1: each loop runs on exactly one thread, so Asio can
    // skip its internal locking.
    loops_.emplace_back(std::make_unique<asio::io_context>(1));
    guards_.emplace_back(asio::make_work_guard(*loops_.back()));
    timeouts_.emplace_back(std::make_unique<timeouts>(*loops_.back()));
    units_.emplace_back(std::make_unique<loop_unit>(sys, *loops_.back()));
    contexts_.push_back(loop_context{
        loops_.back().get(), timeouts_.back().get(), units_.back().get(), &rt});
  }
  for (auto& loop : loops_) {
    std::promise<void> finished;
    done_.emplace_back(finished.get_future());
    threads_.emplace_back([ctx = loop.get(), p = std::move(finished),
                           n = threads_.size()]() mutable {
      // Named, so top -H, perf and debuggers tell the loops apart.
      auto name = "tcpactor-io-" + std::to_string(n);
      pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
      for (;;) {
        try {
          ctx->run();
          p.set_value();
          return;
        } catch (const std::exception& e) {
          // Our handlers do not throw; if one does, keep the loop alive.
          log::write(log::level::error,
                     std::string{"I/O loop: uncaught exception: "} + e.what());
        }
      }
    });
  }
}

io_pool::~io_pool() {
  stop();
}

asio::io_context& io_pool::next() noexcept {
  auto i = next_.fetch_add(1, std::memory_order_relaxed);
  return *loops_[i % loops_.size()];
}

const io_pool::loop_context&
io_pool::context_of(asio::io_context& loop) const noexcept {
  for (auto& x : contexts_)
    if (x.loop == &loop)
      return x;
  return contexts_.front(); // unreachable: every loop is ours
}

void io_pool::stop() {
  // Let each loop run out of work on its own, so pending completions (an
  // aborted accept, a cancelled timer) release their objects on their loop;
  // stop() only bounds the wait.
  for (auto& g : guards_)
    g.reset();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{2};
  for (auto& f : done_)
    if (f.valid())
      f.wait_until(deadline);
  done_.clear();
  for (auto& loop : loops_)
    loop->stop();
  for (auto& t : threads_)
    if (t.joinable())
      t.join();
  threads_.clear();
}

} // namespace tcpactor
