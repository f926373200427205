#pragma once

#include <functional>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_behavior.hpp>

#include "tcpactor/bytes.hpp"
#include "tcpactor/caller.hpp"
#include "tcpactor/fwd.hpp"

namespace tcpactor {

/// What a connection service implements. The runtime sends, in this order:
/// - `bytes`, one chunk as read; the reply is written back (empty: nothing);
/// - at most one `(error_atom, caf::error)` naming the cause of a failure;
/// - `(closed_atom)` exactly once, always last. The actor quits after it.
using service_actor = caf::typed_actor<caf::replies_to<bytes>::with<bytes>,
                                       caf::reacts_to<error_atom, caf::error>,
                                       caf::reacts_to<closed_atom>>;

/// The behavior a connect handler returns for one connection. A service that
/// keeps no per-connection state (no captures that differ per connection)
/// can be built once and returned for every connection: copies share their
/// handlers, and each connection still has its own actor and mailbox.
using service = service_actor::behavior_type;

/// Handle to a connection actor. Besides the service's messages, any actor
/// holding it may send `(write_atom, bytes)` and `(close_atom)`.
using connection_actor =
    service_actor::extend<caf::reacts_to<write_atom, bytes>,
                          caf::reacts_to<close_atom>,
                          caf::reacts_to<shutdown_write_atom>>;

/// Called once per accepted connection, inside the new connection actor (on a
/// scheduler thread, never an I/O thread), before any byte is delivered. It
/// runs concurrently for different connections. An error closes the
/// connection at once and is reported by the listener.
using connect_handler = std::function<caf::expected<service>(
    caf::event_based_actor* self, const caller& conn)>;

/// A service that writes every chunk (or frame) back. Given a half-closing
/// connection (`connection_config::half_close`), it also closes once the
/// peer ended (the empty chunk); given a framing connection, it echoes empty
/// frames too (an empty reply writes nothing); for any other connection it
/// returns one behavior shared by all of them.
service echo_service(caller conn = {});

} // namespace tcpactor
