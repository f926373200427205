#pragma once

// Options of tcpactor-bench. Plain C++ and no CAF: the load generator must
// cost as little as possible and run against any TCP echo server.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace tcpactor_bench {

enum class bench_mode { pingpong, stream, connect, hold };

std::string to_string(bench_mode);

/// Everything the load generator can be told. Zero in `connections`, `size`
/// and `local_addrs` means "the mode's default" until `parse` resolves it.
struct options {
  std::string host = "127.0.0.1";
  uint16_t port = 0; // required
  bench_mode mode = bench_mode::pingpong;
  std::size_t connections = 0; // pingpong/connect 50, stream 4, hold 1000
  std::size_t size = 0;        // stream 16 KiB, otherwise 64 B
  std::size_t window = 256 * 1024;
  std::chrono::nanoseconds duration = std::chrono::seconds{5};
  std::chrono::nanoseconds warmup = std::chrono::seconds{1};
  std::size_t threads = 1;
  /// IPv4 loopback source addresses 127.0.0.1..N to spread connections over.
  std::size_t local_addrs = 0; // connect 16, otherwise 1 per 20,000 conns
  bool allow_remote = false;
  /// TLS (OpenSSL, client side). Every other tls_* field needs `tls`.
  bool tls = false;
  std::string tls_ca;           // verify the server against this CA file
  std::string tls_sni;          // server name sent (and verified, with tls_ca)
  std::string tls_version;      // "", "1.2" or "1.3": pin one version
  std::string tls_ciphers;      // TLS 1.2 cipher list
  std::string tls_ciphersuites; // TLS 1.3 suites
  /// Connect mode: offer each slot's previous session when it reconnects.
  bool tls_resume = false;
  /// Framing of each message (pingpong, connect, hold): "raw" as given, or
  /// "length:N[:be|le][:inclusive]": an N-byte length header before the
  /// payload, as `tcpactor-echo --framing` (and Erlang's {packet,N}) read it.
  /// Echoed back whole, header included, by a framing or a raw echo server.
  std::string framing = "raw";
  std::size_t frame_header = 0; // N; 0: raw
  bool frame_big_endian = true;
  bool frame_inclusive = false; // the length counts the header too
  bool json_only = false;
  bool help = false;
};

/// Fills `out` from `argv` and resolves the per-mode defaults. On failure
/// returns false and sets `err` to one line, e.g. "--size: 'x' is not a size".
bool parse(int argc, char** argv, options& out, std::string& err);

/// The text `--help` prints.
std::string help_text();

} // namespace tcpactor_bench
