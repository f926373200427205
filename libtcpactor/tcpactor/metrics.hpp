#pragma once

// Counters of one runtime, read with `runtime::metrics()` and exported the
// application's own way, or as Prometheus text with `render_prometheus`.
// No CAF, Asio or OpenSSL in here: an exporter needs only this header.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tcpactor {

/// A histogram with fixed buckets, in seconds.
struct histogram_snapshot {
  /// Upper bounds of the buckets, ascending; +Inf is implied after them.
  std::vector<double> bounds;
  /// Cumulative counts: `cumulative[i]` observations were <= `bounds[i]`.
  /// Same size as `bounds`; `count` is the +Inf bucket.
  std::vector<uint64_t> cumulative;
  /// Sum of the observations, in seconds.
  double sum = 0;
  /// Number of observations.
  uint64_t count = 0;
};

/// How long one configured TLS certificate (a listener's default one or an
/// SNI one) is still valid.
struct certificate_expiry {
  /// The listener's address, "host:port".
  std::string listener;
  /// The file the certificate came from (`cert_file`, `pkcs12_file`, or an
  /// SNI entry's `cert_file`).
  std::string file;
  /// The SNI host pattern of an SNI certificate; empty for the default one.
  std::string sni;
  /// Seconds from the snapshot until the certificate's notAfter; negative
  /// once it expired.
  int64_t seconds_left = 0;
};

/// What the connections accepted by a runtime's listeners did, summed over
/// the I/O threads when the snapshot is taken. The byte counters and gauges
/// count every socket of the runtime (outbound clients too) as it goes over
/// the wire, so TLS counts ciphertext.
struct runtime_metrics {
  /// Accepted connections not yet closed (TLS ones while shaking hands too).
  uint64_t connections_open = 0;
  /// Connections accepted (past the connection limits) since start.
  uint64_t connections_accepted = 0;
  /// Closed connections by reason: "clean" (an orderly close, no error),
  /// an `errc` name such as "peer_closed" or "idle_timeout", or "other".
  /// Every reason is listed, in a fixed order, zero or not.
  std::vector<std::pair<std::string, uint64_t>> connections_closed;
  /// Connections reset at once because a connection limit was reached.
  uint64_t refused_over_limit = 0;
  /// Connections reset at once because the process had no descriptor left.
  uint64_t refused_no_descriptors = 0;
  /// TLS connections that closed before their handshake completed (failed,
  /// timed out, reset...).
  uint64_t tls_handshake_failures = 0;
  /// Bytes received from and sent to the kernel.
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  /// Bytes delivered to actors and not answered yet (a chunk read straight
  /// into a pooled block counts the block), right now.
  uint64_t unprocessed_bytes = 0;
  /// Bytes waiting in write queues for the kernel, right now.
  uint64_t queued_bytes = 0;
  /// Lifetime of closed connections, from the start of reading (after the
  /// TLS handshake) to the close; connections that never opened are left
  /// out.
  histogram_snapshot connection_lifetime;
  /// Duration of successful server-side TLS handshakes.
  histogram_snapshot tls_handshake_duration;
  /// Every certificate of every TLS listener of the runtime, as loaded now
  /// (after a reload: the new ones).
  std::vector<certificate_expiry> certificates;
};

/// Renders `x` in the Prometheus text exposition format (version 0.0.4):
/// HELP and TYPE lines, `tcpactor_` names with their units, histograms as
/// `_bucket{le=...}`, `_sum` and `_count`, the close reason as a label.
std::string render_prometheus(const runtime_metrics& x);

} // namespace tcpactor
