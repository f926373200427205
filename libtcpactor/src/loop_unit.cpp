#include "loop_unit.hpp"

#include <caf/resumable.hpp>

namespace tcpactor {

namespace {

// Messages one actor may handle before the loop's sockets get a turn.
constexpr std::size_t max_throughput = 64;

} // namespace

loop_unit::loop_unit(caf::actor_system& sys, asio::io_context& loop)
    : caf::execution_unit(&sys), loop_(loop) {
  // nop
}

void loop_unit::exec_later(caf::resumable* ptr) {
  asio::post(loop_, [this, ptr] { run(ptr); });
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
