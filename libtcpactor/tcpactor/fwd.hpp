#pragma once

#include <cstdint>

#include <caf/atom.hpp>
#include <caf/fwd.hpp>

namespace tcpactor {

class bytes;
class caller;
class runtime;
class listener;
class blocking_client;

struct runtime_config;
struct connection_config;
struct listener_config;
struct client_config;
struct listener_stats;

/// Identifies a connection for the lifetime of the process. Never the fd
/// number: the kernel reuses descriptors at once.
using connection_id = uint64_t;

// Message tags. CAF 0.17 atoms hold at most 10 characters.

/// `(error_atom, caf::error)`: the connection failed; `closed_atom` follows.
using error_atom = caf::atom_constant<caf::atom("tcpa_err")>;
/// `(closed_atom)`: the last message a connection sends its actor.
using closed_atom = caf::atom_constant<caf::atom("tcpa_closd")>;
/// `(connected_atom)`: a client's connect (and handshake) completed.
using connected_atom = caf::atom_constant<caf::atom("tcpa_conn")>;
/// `(write_atom, bytes)`: queue bytes for writing. As a request, the response
/// arrives once the bytes are handed to the kernel (a write ack).
using write_atom = caf::atom_constant<caf::atom("tcpa_write")>;
/// `(close_atom)`: flush what is queued, then close.
using close_atom = caf::atom_constant<caf::atom("tcpa_close")>;
/// `(shutdown_write_atom)`: flush what is queued, then end the write side
/// (FIN; with TLS, close_notify first). Reading goes on until the peer ends.
using shutdown_write_atom = caf::atom_constant<caf::atom("tcpa_wshut")>;
/// `(drain_atom)` to a connection actor: its listener is draining; finish
/// what is in flight. To a listener, `(drain_atom, caf::timespan)`: stop
/// accepting, notify every connection, wait for them to close until the
/// deadline, then close the rest; replies with how many it had to close.
using drain_atom = caf::atom_constant<caf::atom("tcpa_drain")>;
/// `(start_atom)`: make a stopped listener accept again.
using start_atom = caf::atom_constant<caf::atom("tcpa_start")>;
/// `(graceful_stop_atom)`: stop accepting; open connections go on.
using graceful_stop_atom = caf::atom_constant<caf::atom("tcpa_gstop")>;
/// `(immediate_stop_atom)`: stop accepting and close every connection.
using immediate_stop_atom = caf::atom_constant<caf::atom("tcpa_istop")>;
/// `(stats_atom)`: ask a listener for its `listener_stats`.
using stats_atom = caf::atom_constant<caf::atom("tcpa_stats")>;
/// `(tls_reload_atom)`: make a TLS listener read its certificates again.
using tls_reload_atom = caf::atom_constant<caf::atom("tcpa_rload")>;

} // namespace tcpactor
