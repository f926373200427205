#pragma once

#include <cstdint>
#include <string>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include "tcpactor/config.hpp"
#include "tcpactor/connection.hpp"
#include "tcpactor/fwd.hpp"

namespace tcpactor {

/// Counters of one listener.
struct listener_stats {
  /// Port currently (or last) bound.
  uint16_t port = 0;
  /// True while accepting.
  bool accepting = false;
  /// Connections open right now.
  uint64_t open = 0;
  /// Connections accepted since spawn.
  uint64_t accepted = 0;
  /// Connections refused by `on_connect`.
  uint64_t rejected = 0;
  /// Connections closed because their handler failed (threw, exited early,
  /// or answered a chunk with an error).
  uint64_t failed = 0;
  /// TLS handshakes that failed or timed out (never seen by `on_connect`).
  uint64_t handshake_failed = 0;
  /// Connections reset at once because `max_connections` or
  /// `max_connections_per_ip` was reached (not counted in `accepted`).
  uint64_t over_limit = 0;
  /// Connections reset at once because the process ran out of file
  /// descriptors (EMFILE/ENFILE); a reserved descriptor makes room to accept
  /// and close them, so they do not hang in the backlog.
  uint64_t no_descriptors = 0;
  /// Connections closed before their PROXY protocol header was accepted:
  /// invalid, missing, late, or the listener stopped meanwhile (never seen
  /// by `on_connect`; not counted in `handshake_failed`).
  uint64_t proxy_failed = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, listener_stats& x) {
  return f(caf::meta::type_name("tcpactor::listener_stats"), x.port,
           x.accepting, x.open, x.accepted, x.rejected, x.failed,
           x.handshake_failed, x.over_limit, x.no_descriptors, x.proxy_failed);
}

/// What happened to one connection, sent to a listener's observer.
struct connection_event {
  enum kind_t : uint8_t {
    /// Accepted; the connect handler runs next.
    opened,
    /// The connect handler returned an error; the connection was closed.
    rejected,
    /// The handler failed (threw, exited early, or answered with an error);
    /// the connection was closed.
    failed,
    /// The connection closed; `reason` is set if it failed.
    closed,
    /// The TLS handshake failed (`reason` has OpenSSL's cause); the
    /// connection was closed and never opened.
    handshake_failed,
    /// A connection limit was reached: the connection was reset at once and
    /// got no actor; `id` is 0 and `reason` is `too_many_connections`.
    limited,
    /// The connection closed before its PROXY protocol header was accepted
    /// (`reason`: `proxy_header_invalid`, `proxy_header_timeout`, or why it
    /// was closed meanwhile, e.g. `shutdown`); it never opened.
    proxy_failed,
  };
  kind_t kind = opened;
  connection_id id = 0;
  /// "host:port" of the peer (a Unix-domain listener: its path).
  std::string peer;
  caf::error reason;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, connection_event& x) {
  auto k = static_cast<uint8_t>(x.kind);
  return f(caf::meta::type_name("tcpactor::connection_event"), k, x.id, x.peer,
           x.reason);
}

std::string to_string(connection_event::kind_t x);

/// A listener accepts connections, spawns one connection actor per
/// connection and supervises them, neither linked nor monitored: a failing
/// connection actor closes only its own socket, whose end the listener then
/// hears of and counts; it never takes the listener down.
/// - `start_atom`: accept again after a stop, on the same port; replies with
///   the bound port or the bind error.
/// - `graceful_stop_atom`: stop accepting; open connections go on.
/// - `immediate_stop_atom`: stop accepting and close every connection; a
///   request is answered once the port is free and every connection has
///   finished (`listener_stats::open` is 0 by then).
/// - `stats_atom`: replies with `listener_stats`.
/// - `(drain_atom, caf::timespan deadline)`: stops accepting, tells every
///   connection (`caller::draining`, `caller::on_drain`), lets them finish
///   and close on their own; at the deadline closes the rest. Replies, once
///   every connection has finished, with the number it had to close (0: a
///   clean drain).
/// - `tls_reload_atom`: reads the TLS certificate and key files again; new
///   handshakes use them, open connections keep theirs. On failure replies
///   with the error (naming field, file and cause) and keeps the old ones.
/// Killing the listener actor (an exit message) is an immediate stop.
using listener_actor =
    caf::typed_actor<caf::replies_to<start_atom>::with<uint16_t>,
                     caf::reacts_to<graceful_stop_atom>,
                     caf::reacts_to<immediate_stop_atom>,
                     caf::replies_to<stats_atom>::with<listener_stats>,
                     caf::replies_to<drain_atom, caf::timespan>::with<uint64_t>,
                     caf::reacts_to<tls_reload_atom>>;

/// A started listener: its actor and where it is bound (a Unix-domain
/// listener: its path as host, port 0).
class listener {
public:
  listener() = default;
  listener(listener_actor handle, std::string host, uint16_t port)
      : handle_(std::move(handle)), host_(std::move(host)), port_(port) {
    // nop
  }

  const listener_actor& handle() const noexcept { return handle_; }
  const std::string& host() const noexcept { return host_; }
  uint16_t port() const noexcept { return port_; }

private:
  listener_actor handle_;
  std::string host_;
  uint16_t port_ = 0;
};

/// Validates `cfg`, binds (with SO_REUSEADDR) and starts accepting. Bind
/// errors such as "Address already in use" come back here, naming the
/// address. `observer`, if set, receives a `connection_event` per event.
caf::expected<listener> spawn_listener(runtime& rt, listener_config cfg,
                                       connect_handler on_connect,
                                       caf::actor observer = {});

} // namespace tcpactor
