#include "loop_unit.hpp"

#include <utility>

#include <caf/actor_system.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

namespace tcpactor {

namespace {

// Messages one actor may handle before the loop's sockets get a turn.
constexpr std::size_t max_throughput = 64;

} // namespace

loop_unit::loop_unit(caf::actor_system& sys, asio::io_context& loop)
    : caf::execution_unit(&sys), loop_(loop) {
  // nop
}

namespace {

// Owns the reference exec_later() was given until the loop runs the actor.
// A loop torn down with the post still queued (io_pool::stop past its
// deadline) destroys the handler unrun: the actor then goes to CAF's
// scheduler instead of leaking, so the actor system can still shut down.
class pending {
public:
  pending(caf::actor_system& sys, caf::resumable* ptr) : sys_(&sys), ptr_(ptr) {
    // nop
  }
  pending(pending&& other) noexcept
      : sys_(other.sys_), ptr_(std::exchange(other.ptr_, nullptr)) {
    // nop
  }
  pending(const pending&) = delete;
  pending& operator=(const pending&) = delete;
  pending& operator=(pending&&) = delete;
  ~pending() {
    if (ptr_ != nullptr)
      sys_->scheduler().enqueue(ptr_);
  }
  caf::resumable* release() noexcept { return std::exchange(ptr_, nullptr); }

private:
  caf::actor_system* sys_;
  caf::resumable* ptr_;
};

} // namespace

void loop_unit::exec_later(caf::resumable* ptr) {
  asio::post(loop_, [this, p = pending{system(), ptr}]() mutable {
    run(p.release());
  });
}

void loop_unit::run(caf::resumable* ptr) {
  switch (ptr->resume(this, max_throughput)) {
    case caf::resumable::resume_later:
      exec_later(ptr); // keeps the reference
      break;
    case caf::resumable::awaiting_message:
    case caf::resumable::done:
    case caf::resumable::shutdown_execution_unit:
      // The next message re-schedules it with a reference of its own.
      intrusive_ptr_release(ptr);
      break;
  }
}

} // namespace tcpactor
