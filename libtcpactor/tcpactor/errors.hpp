#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

namespace tcpactor {

/// Every failure tcpactor reports, as the code of a `caf::error` in the
/// category `tcpactor::error_category`. The error's context holds one string
/// that names the cause (peer, field, OS text).
enum class errc : uint8_t {
  // 0 is reserved: CAF reads code 0 as "no error".
  /// A configuration field is missing or out of range.
  invalid_config = 1,
  /// Host name resolution failed.
  resolve_failed,
  /// The peer refused or the route failed while connecting.
  connect_failed,
  /// Resolve plus connect took longer than `connect_timeout`.
  connect_timeout,
  /// bind() or listen() failed, e.g. "Address already in use".
  bind_failed,
  /// The peer closed the connection (orderly FIN).
  peer_closed,
  /// The peer reset the connection (RST).
  connection_reset,
  /// A blocking read saw no data within its timeout; the connection stays up.
  read_timeout,
  /// Queued bytes did not drain within the write timeout.
  write_timeout,
  /// The kernel refused a write.
  write_failed,
  /// Any other socket error; the context carries the OS text.
  io_failed,
  /// A writer queued more than `write_queue_limit` bytes for a slow reader.
  write_overflow,
  /// The connection's actor threw or exited before the connection closed.
  handler_failed,
  /// `on_connect` refused the connection.
  rejected,
  /// The connection (or client) was already closed when used.
  closed,
  /// The listener or runtime stopped and closed the connection.
  shutdown,
  /// The TLS handshake failed (untrusted certificate, wrong host name, no
  /// common protocol or cipher, missing client certificate, not TLS at all);
  /// the context carries OpenSSL's reason and the peer.
  tls_handshake_failed,
  /// The TLS handshake did not finish within `handshake_timeout`.
  tls_handshake_timeout,
  /// The peer closed without TLS close_notify: the data may be cut short.
  tls_truncated,
  /// A TLS record could not be decrypted or verified after the handshake.
  tls_failed,
  /// A listener's connection limit (total or per source address) was
  /// reached; the connection was closed at once.
  too_many_connections,
  /// No first byte arrived within `first_byte_timeout`.
  first_byte_timeout,
  /// No byte arrived within `idle_timeout`.
  idle_timeout,
  /// Queued bytes made no progress within `write_stall_timeout`.
  write_stall_timeout,
  /// The connection outlived `max_lifetime`.
  lifetime_exceeded,
  /// A frame (announced or read) exceeds `framing_config::max_frame_size`,
  /// or no delimiter came within it; the context names limit and size.
  frame_too_large,
  /// The peer ended the stream inside a frame.
  frame_truncated,
  /// A frame the codec cannot carry: a payload that contains the delimiter,
  /// an exact-size frame of another size, a length the header cannot hold.
  frame_invalid,
  /// The back-end node serving the connection went down, its link dropped,
  /// or it did not answer within the request timeout; or no back end is up
  /// for a new connection. The context names the back end.
  backend_down,
  /// A listener expecting a PROXY protocol header got a malformed one, or
  /// none (other bytes, or the peer closed first); the context names the
  /// peer and the cause.
  proxy_header_invalid,
  /// No complete PROXY protocol header arrived within
  /// `listener_config::proxy_header_timeout`.
  proxy_header_timeout,
};

/// Category atom of every `caf::error` that carries an `errc`.
constexpr caf::atom_value error_category = caf::atom("tcpactor");

/// Returns the enum name, e.g. "connect_timeout".
std::string to_string(errc x);

/// Prints the enum name (for logs and test frameworks).
std::ostream& operator<<(std::ostream& out, errc x);

/// Makes an error without context.
caf::error make_error(errc x);

/// Makes an error whose context names the cause.
caf::error make_error(errc x, std::string cause);

/// Returns the tcpactor kind of `err`, or nothing if `err` is no tcpactor
/// error (e.g. a CAF `sec` code).
bool is_tcpactor_error(const caf::error& err) noexcept;

/// Returns the kind of a tcpactor error; `errc{}` (0) for other categories.
errc kind(const caf::error& err) noexcept;

/// Renders `err` for humans without needing an actor system, e.g.
/// "connect_timeout: 127.0.0.1:9 after 500ms".
std::string describe(const caf::error& err);

/// Lets `actor_system::render` print tcpactor errors.
void add_error_category(caf::actor_system_config& cfg);

} // namespace tcpactor
