#pragma once

#include <caf/execution_unit.hpp>
#include <caf/fwd.hpp>

#include "asio_glue.hpp"

namespace tcpactor {

/// An I/O loop as a CAF execution unit: an actor woken by a message this
/// loop sends runs right here, after the current handler, instead of on a
/// scheduler thread. That saves two thread hops per chunk (the wakeup of a
/// worker, and the worker's reply back), the cost that keeps a scheduled
/// actor per connection behind a plain event loop. CAF's brokers run on
/// their multiplexer the same way. CAF still never runs one actor on two
/// threads at once: a message from anywhere else wakes it on the scheduler.
///
/// Only for handlers that never block: while one runs, the loop's other
/// sockets wait. Hence opt-in (`connection_config::handlers_on_io_thread`).
class loop_unit final : public caf::execution_unit {
public:
  loop_unit(caf::actor_system& sys, asio::io_context& loop);

  /// Takes over the reference the caller added for us, as the scheduler
  /// does.
  void exec_later(caf::resumable* ptr) override;

private:
  void run(caf::resumable* ptr);

  asio::io_context& loop_;
};

} // namespace tcpactor
