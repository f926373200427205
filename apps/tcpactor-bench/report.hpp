#pragma once

// The end of a run: the human summary and the one "RESULT {json}" line.

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include "histogram.hpp"
#include "options.hpp"

namespace tcpactor_bench {

/// The machine the figures came from.
struct machine_info {
  unsigned cores = 0;      // as nproc counts them: CPUs we may run on
  std::string kernel;      // uname -r
  std::string build_type;  // CMAKE_BUILD_TYPE of this binary
  double client_cpu_s = 0; // user + system time this process used
};

machine_info probe_machine();

/// Everything a run measured.
struct result {
  double seconds = 0; // measured interval (hold: the idle time)
  uint64_t messages = 0;
  uint64_t bytes = 0;           // echoed bytes received in the interval
  histogram latency;            // ns
  uint64_t established = 0;     // connections opened over the whole run
  double connections_per_s = 0; // connect: loops/s; others: setup rate
  uint64_t held = 0;            // hold: connections open at the check
  uint64_t errors = 0;
  std::map<std::string, uint64_t> error_kinds;
  /// TLS: what the first completed handshake negotiated, and how many
  /// handshakes completed over the whole run (resumed: of those).
  std::string tls_protocol;
  std::string tls_cipher;
  uint64_t tls_handshakes = 0;
  uint64_t tls_resumed = 0;
  machine_info machine;
};

/// Prints the human summary on `out`.
void print_summary(std::FILE* out, const options& opts, const result& res);

/// Renders the line "RESULT {...}" without the newline.
std::string result_line(const options& opts, const result& res);

} // namespace tcpactor_bench
