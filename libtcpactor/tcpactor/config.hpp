#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <caf/error.hpp>

#include "tcpactor/framing.hpp"
#include "tcpactor/tls.hpp"

namespace tcpactor {

/// Settings of a `runtime`: the pool of I/O threads.
struct runtime_config {
  /// Number of I/O threads, each running its own event loop. 0: half the
  /// hardware threads, at least one (the other half runs the handlers).
  std::size_t io_threads = 0;

  caf::error validate() const;
};

/// Per-connection limits, shared by accepted and outbound connections.
/// Memory per connection stays below roughly
/// `max_unprocessed_bytes + write_queue_limit + read_chunk`.
struct connection_config {
  /// Largest chunk one read delivers as one `bytes` message.
  std::size_t read_chunk = 64 * 1024;
  /// Reading pauses while the actor holds more unprocessed bytes than this
  /// (counted as the memory their chunks keep: a chunk of 48 KiB or more
  /// shares the 64 KiB block it was read into instead of a copy)...
  std::size_t max_unprocessed_bytes = 1024 * 1024;
  /// ...or more unprocessed chunks than this; it resumes below half of both.
  std::size_t max_unprocessed_chunks = 64;
  /// Reading pauses while more than this many bytes wait to be written...
  std::size_t write_high_watermark = 1024 * 1024;
  /// ...and resumes once the queue drains below this.
  std::size_t write_low_watermark = 256 * 1024;
  /// A write that would queue more than this fails the connection with
  /// `errc::write_overflow` instead of growing memory without bound.
  std::size_t write_queue_limit = 16 * 1024 * 1024;
  /// Time a graceful close may spend flushing queued bytes before it closes
  /// anyway (reported as `errc::write_timeout`).
  std::chrono::milliseconds close_timeout{5'000};
  /// Disable Nagle's algorithm: replies go out at once.
  bool tcp_nodelay = true;
  /// Half-close: the peer's FIN (TLS: close_notify) arrives as an empty
  /// `bytes` chunk and the connection stays writable until it is closed or
  /// its write side shut down. Off: the FIN closes the connection once the
  /// replies to earlier chunks are written.
  bool half_close = false;
  /// Run the connection's actor on its socket's I/O thread whenever its own
  /// socket wakes it, instead of on a scheduler thread: no thread hop per
  /// chunk (ping-pong throughput rises markedly; see README). Only for
  /// handlers that never block or compute long, since the loop's other
  /// sockets wait meanwhile. Actors they message run there too. A chunk
  /// above 4 KiB still goes to a scheduler thread: its work outweighs the
  /// hop, and runs beside the loop's reads.
  bool handlers_on_io_thread = false;
  /// TCP keepalive (SO_KEEPALIVE): the kernel probes an idle peer and
  /// resets a dead one (reported as `connection_reset` or `io_failed`).
  bool keepalive = false;
  /// Idle time before the first probe, time between probes, probes
  /// unanswered before the reset (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT);
  /// 0: the system's (7200 s, 75 s, 9).
  std::chrono::seconds keepalive_idle{0};
  std::chrono::seconds keepalive_interval{0};
  uint32_t keepalive_count = 0;
  /// Sent data unacknowledged this long makes the kernel drop the
  /// connection (TCP_USER_TIMEOUT, RFC 5482); 0: the system's retransmission
  /// limits (about 15 minutes).
  std::chrono::milliseconds user_timeout{0};
  /// Kernel socket buffers (SO_RCVBUF, SO_SNDBUF; the kernel doubles the
  /// value); 0: Linux autotuning, which is usually best. A listener sets
  /// them before listen(), so the window scale offered fits them.
  std::size_t receive_buffer = 0;
  std::size_t send_buffer = 0;
  /// A handler that answers a chunk with an error (not bytes) fails the
  /// connection: `error(handler_failed)`, then `closed`. Off: the error is
  /// reported to the actor as `(error_atom, handler_failed: ...)` and the
  /// connection goes on, as Ballerina's `onBytes` returning an error does;
  /// a service then sees errors that are not followed by `closed`. An actor
  /// that died still closes its connection either way.
  bool close_on_handler_error = true;
  /// Messages instead of chunks: each whole frame arrives as one `bytes`
  /// message and every reply or write is framed. Raw by default. Frames
  /// count against `max_unprocessed_bytes` like chunks; a partial frame
  /// held meanwhile is bounded by `framing.max_frame_size`. With a codec,
  /// an empty reply still writes nothing; `write` of empty bytes sends an
  /// empty frame.
  framing_config framing;

  // Per-phase timeouts, checked by the I/O loop (never reset by messages in
  // the actor's mailbox) with a precision of an eighth of the shortest one.
  // 0 turns one off. Each ends the connection with its own error kind.

  /// No byte arrived this long after the connection opened (after the TLS
  /// handshake): `errc::first_byte_timeout`. Off by default, since in many
  /// protocols the server speaks first.
  std::chrono::milliseconds first_byte_timeout{0};
  /// No byte arrived for this long: `errc::idle_timeout`. Time while
  /// reading is paused for flow control does not count. Off by default.
  std::chrono::milliseconds idle_timeout{0};
  /// Queued bytes made no progress for this long (the peer stopped
  /// reading): `errc::write_stall_timeout`, queued bytes are dropped.
  std::chrono::milliseconds write_stall_timeout{60'000};
  /// The connection closes (flushing its queue) after this long:
  /// `errc::lifetime_exceeded`. Off by default.
  std::chrono::milliseconds max_lifetime{0};

  /// Checks ranges; the error names `<prefix>.<field>`.
  caf::error validate(const std::string& prefix = "connection") const;
};

/// Which PROXY protocol header (HAProxy's; v1 text, v2 binary) a listener
/// expects at the start of every connection, before any TLS.
enum class proxy_protocol : uint8_t {
  /// None: the socket's addresses are the peer's.
  off,
  /// Only v1 (`PROXY TCP4 ...\r\n`).
  v1,
  /// Only v2 (binary).
  v2,
  /// Either, told apart by the first byte.
  any,
};

/// "off", "v1", "v2" or "any".
std::string to_string(proxy_protocol x);

/// Parses "off", "v1", "v2" or "any"; false for anything else.
bool from_string(std::string_view str, proxy_protocol& out);

/// Settings of a listener.
struct listener_config {
  /// Address to bind: an IPv4 or IPv6 literal or a host name.
  std::string host = "0.0.0.0";
  /// Port to bind; 0 lets the kernel pick (the listener reports it).
  uint16_t port = 0;
  /// Listen on this Unix-domain stream socket instead of host:port (which
  /// are then unused); a leading '@' names a Linux abstract socket (no
  /// file). At most 107 bytes. A socket file nobody listens on any more is
  /// replaced, one another process listens on fails with `bind_failed`
  /// (address in use), and any other file there is never touched. The file
  /// is removed when the listener stops. TCP options (`tcp_nodelay`,
  /// keepalive, `user_timeout`, `ipv6_only`, `max_connections_per_ip`) are
  /// skipped and `reuse_port` is refused; TLS, framing and timeouts work.
  std::string unix_path;
  /// Permission bits of the socket file, set before the first accept (e.g.
  /// 0660: owner and group may connect); 0: as the process umask leaves them.
  uint32_t unix_mode = 0;
  /// Length of the kernel's accept queue.
  int backlog = 1024;
  /// Open connections at most; 0: unlimited. A connection over the limit is
  /// accepted and reset at once (SO_LINGER 0: the peer reads ECONNRESET
  /// instead of waiting in the backlog, and no TIME_WAIT piles up here),
  /// counted in `listener_stats::over_limit` and reported as a `limited`
  /// event; it never gets an actor. Unlimited by default because only the
  /// deployment knows its capacity: a fixed default would refuse traffic on
  /// big machines (the hold benchmark keeps 10000 connections) and protect
  /// nothing on small ones, where RLIMIT_NOFILE (often 1024) binds first and
  /// is handled without spinning (see `listener_stats::no_descriptors`).
  std::size_t max_connections = 0;
  /// Open connections per source address at most; 0: unlimited. Counts
  /// exact addresses, so one IPv6 host with a whole prefix evades it; at most
  /// `max_connections` when that is set.
  std::size_t max_connections_per_ip = 0;
  /// An IPv6 listener ("::") takes only IPv6 clients (IPV6_V6ONLY); off:
  /// IPv4 clients too, as IPv4-mapped addresses.
  bool ipv6_only = false;
  /// One acceptor per I/O thread, all bound to the port with SO_REUSEPORT:
  /// the kernel spreads new connections over them by address hash, and each
  /// I/O thread accepts and serves its own (no accepting thread in between;
  /// for connect churn with several I/O threads). Off: one acceptor hands
  /// connections to the I/O threads in turn. SO_REUSEPORT lets any other
  /// socket of the same user bind the port too while it is open.
  bool reuse_port = false;
  /// Expect a PROXY protocol header (from HAProxy, nginx, a cloud load
  /// balancer) at the start of every connection: the connection's remote
  /// and local address are then the ones the header names (v1 `UNKNOWN`
  /// and v2 `LOCAL` keep the socket's). A connection without a valid header
  /// is closed with `proxy_header_invalid` before any TLS handshake or actor.
  /// Only for listeners that nothing but the proxy can reach: a header is
  /// believed as sent. Off by default.
  tcpactor::proxy_protocol proxy_protocol = tcpactor::proxy_protocol::off;
  /// A header not complete this long after accept closes the connection
  /// (`proxy_header_timeout`).
  std::chrono::milliseconds proxy_header_timeout{5'000};
  /// Per-connection limits.
  connection_config connection;
  /// TLS; off unless `tls.enabled`.
  tls_config tls;

  caf::error validate() const;
};

/// Settings of an outbound connection.
struct client_config {
  /// Host name or address to connect to. Required.
  std::string host;
  /// Port to connect to. Required (1-65535).
  uint16_t port = 0;
  /// Connect to this Unix-domain stream socket instead of host:port (which
  /// are then not required); a leading '@' names a Linux abstract socket.
  /// With TLS and `verify_peer`, `tls.server_name` names the certificate's
  /// host, since there is no host name to check it against.
  std::string unix_path;
  /// Local address to bind before connecting; empty: any.
  std::string local_host;
  /// Local port to bind before connecting; 0: any.
  uint16_t local_port = 0;
  /// Bound on resolve plus connect.
  std::chrono::milliseconds connect_timeout{5'000};
  /// `blocking_client::read_bytes` gives up after this (the connection stays).
  std::chrono::milliseconds read_timeout{300'000};
  /// `blocking_client::write_bytes` gives up after this and closes.
  std::chrono::milliseconds write_timeout{300'000};
  /// Per-connection limits.
  connection_config connection;
  /// TLS; off unless `tls.enabled`.
  tls_config tls;

  caf::error validate() const;
};

} // namespace tcpactor
