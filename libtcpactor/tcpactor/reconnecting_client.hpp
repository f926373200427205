#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "tcpactor/bytes.hpp"
#include "tcpactor/config.hpp"
#include "tcpactor/fwd.hpp"

namespace tcpactor {

/// Settings of a reconnecting client: where to connect, how to back off
/// between attempts, and how much to hold while disconnected.
///
/// The `k`-th wait since the last successful connect (the first follows the
/// first failure, or the drop of a connection that worked) is based on
/// `b = min(max_backoff, initial_backoff * multiplier^(k - 1))`, shortened by
/// a random fraction of up to `jitter`: uniformly drawn from
/// `[b * (1 - jitter), b]`. `jitter = 0.5` is the "equal jitter" of the AWS
/// backoff article (at least half of `b`, so a flapping server is never
/// hammered), `jitter = 1` its "full jitter" (`[0, b]`), `jitter = 0` plain
/// exponential backoff.
struct reconnecting_client_config {
  /// Where and how to connect, TLS included; validated as `client.*`.
  client_config client;
  /// Base of the first wait after a failure or a dropped connection.
  std::chrono::milliseconds initial_backoff{100};
  /// Upper bound of the wait, however many failures came before.
  std::chrono::milliseconds max_backoff{30'000};
  /// Growth of the wait per consecutive failure; at least 1.
  double multiplier = 2.0;
  /// Fraction of the wait that is randomised, 0 to 1 (see above).
  double jitter = 0.5;
  /// Consecutive failed attempts before giving up; 0: never give up. A
  /// successful connect starts the count (and the backoff) afresh.
  uint32_t max_attempts = 0;
  /// Bytes of writes held while disconnected. A write that would exceed it
  /// is refused with `errc::write_overflow`; 0 refuses every write made
  /// while disconnected.
  std::size_t max_buffered_bytes = 1024 * 1024;

  /// Checks ranges; the error names the field, e.g. `reconnect.jitter`.
  caf::error validate() const;
};

// Events of a reconnecting client. CAF 0.17 atoms hold at most 10 characters.

/// `(disconnected_atom, uint32_t attempt, caf::error reason)`: a connect
/// attempt failed or an established connection dropped. `reason` is always
/// set (`peer_closed` for an orderly close by the server).
using disconnected_atom = caf::atom_constant<caf::atom("tcpa_disc")>;
/// `(unsent_atom, uint64_t writes, uint64_t bytes, caf::error reason)`:
/// writes refused or dropped without ever reaching a connection; each of
/// them was also answered with `reason`.
using unsent_atom = caf::atom_constant<caf::atom("tcpa_unsnt")>;
/// `(gave_up_atom, caf::error last, uint64_t unsent_bytes)`: `max_attempts`
/// consecutive attempts failed (or the runtime shut down); `closed_atom`
/// follows.
using gave_up_atom = caf::atom_constant<caf::atom("tcpa_gvup")>;

/// Handle to a client that reconnects with backoff. It owns one
/// `client_actor` at a time and spawns a new one after each failure.
///
/// It takes `(write_atom, bytes)`, best sent as a request, and `(close_atom)`:
/// - While connected, a write goes to the connection and is answered once the
///   bytes reached the kernel, or with that connection's error if it drops
///   first. Such a write is never retried: delivery is at most once, and
///   bytes the kernel accepted can still be lost with the connection.
/// - While disconnected (waiting or connecting), writes are held, up to
///   `max_buffered_bytes`, and sent in order once connected, before any later
///   write. A write beyond the bound is answered with
///   `errc::write_overflow` and reported as `unsent`.
/// - `close_atom` stops for good: an open connection is flushed and closed
///   (bounded by `connection.close_timeout`); held writes are answered with
///   `errc::closed` and reported as `unsent`; later writes fail likewise.
///
/// Its owner receives, with this handle as sender:
/// - `(connected_atom, uint32_t attempt, std::string peer)` per connect;
///   `attempt` counts from 1 since the last success;
/// - `(disconnected_atom, uint32_t attempt, caf::error reason)` per failed
///   attempt or dropped connection;
/// - `bytes` per chunk read, as a request: the reply (`bytes`, empty for
///   nothing) is written back, as with `spawn_client`;
/// - `(unsent_atom, uint64_t writes, uint64_t bytes, caf::error reason)`;
/// - `(gave_up_atom, caf::error last, uint64_t unsent_bytes)`, after
///   `unsent` for the writes still held;
/// - `(closed_atom)` exactly once, always last; the actor then quits.
/// It monitors the owner and closes (without flushing held writes) once the
/// owner is gone. An exit message closes it at once, like `close_atom`.
using reconnecting_client_actor =
    caf::typed_actor<caf::reacts_to<write_atom, bytes>,
                     caf::reacts_to<close_atom>>;

/// Validates `cfg` (and builds its TLS context, so file errors come back
/// here) and starts the first connect attempt; events go to `owner`.
caf::expected<reconnecting_client_actor>
spawn_reconnecting_client(runtime& rt, reconnecting_client_config cfg,
                          caf::actor owner);

} // namespace tcpactor
