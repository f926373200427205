#pragma once

#include <functional>
#include <memory>

#include <caf/actor.hpp>
#include <caf/actor_control_block.hpp>

#include "tcpactor/connection.hpp"

namespace tcpactor {

/// Spawns the actor of one accepted connection. Inside it, on a scheduler
/// thread, `on_connect` decides: a service starts reading; an error closes
/// the connection and goes to `on_reject`.
void spawn_connection(caf::actor_system& sys, caf::strong_actor_ptr tr,
                      std::shared_ptr<const connect_handler> on_connect,
                      std::function<void(const caf::error&)> on_reject);

/// Closes `conn` at once with `reason`, which its actor then sees as
/// `(error_atom, reason)` before `closed`: for services whose failure has a
/// kind of its own (a back end down) rather than `handler_failed`. A no-op
/// once the connection is closed.
void fail_connection(const caller& conn, caf::error reason);

} // namespace tcpactor
