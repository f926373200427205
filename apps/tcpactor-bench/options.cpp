#include "options.hpp"
#include "../common/text.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>

namespace tcpactor_bench {

namespace {

constexpr std::size_t max_size = 16 * 1024 * 1024;

using tcpactor::apps::in_quotes;

/// Parses a decimal number with an optional unit from `units`; returns the
/// number times the unit's factor, or false.
template <size_t N>
bool parse_scaled(std::string_view text,
                  const std::pair<std::string_view, double> (&units)[N],
                  double& out) {
  double value = 0;
  auto last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), last, value);
  if (ec != std::errc{} || !std::isfinite(value) || value < 0)
    return false;
  std::string_view unit{ptr, static_cast<size_t>(last - ptr)};
  for (auto& [name, factor] : units) {
    if (unit == name) {
      out = value * factor;
      return true;
    }
  }
  return false;
}

std::string parse_size(std::string_view text, std::size_t min, std::size_t max,
                       std::size_t& out) {
  static constexpr std::pair<std::string_view, double> units[] = {
      {"", 1},        {"B", 1},         {"K", 1024.0},    {"KiB", 1024.0},
      {"k", 1024.0},  {"M", 1048576},   {"MiB", 1048576}, {"m", 1048576},
      {"G", 1 << 30}, {"GiB", 1 << 30},
  };
  double value = 0;
  if (!parse_scaled(text, units, value) || value != std::floor(value))
    return in_quotes(text) + " is not a size (e.g. 64, 16KiB, 1MiB)";
  if (value < static_cast<double>(min) || value > static_cast<double>(max))
    return in_quotes(text) + " is out of range " + std::to_string(min) + "-" +
           std::to_string(max);
  out = static_cast<std::size_t>(value);
  return {};
}

std::string parse_seconds(std::string_view text, double min,
                          std::chrono::nanoseconds& out) {
  static constexpr std::pair<std::string_view, double> units[] = {
      {"", 1},
      {"s", 1},
      {"ms", 1e-3},
      {"min", 60},
  };
  double value = 0;
  if (!parse_scaled(text, units, value))
    return in_quotes(text) + " is not a duration (e.g. 5, 2.5s, 500ms)";
  if (value < min || value > 24 * 3600)
    return in_quotes(text) + " must lie between " + std::to_string(min) +
           " s and 24 h";
  out = std::chrono::nanoseconds{static_cast<int64_t>(value * 1e9)};
  return {};
}

std::string parse_count(std::string_view text, std::size_t min, std::size_t max,
                        std::size_t& out) {
  auto last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), last, out);
  if (text.empty() || ec != std::errc{} || ptr != last)
    return in_quotes(text) + " is not a non-negative integer";
  if (out < min || out > max)
    return in_quotes(text) + " is out of range " + std::to_string(min) + "-" +
           std::to_string(max);
  return {};
}

/// "raw" or "length:N[:be|le][:inclusive]", the subset of tcpactor's
/// framing specs a load generator needs; no CAF here, so not its parser.
std::string parse_framing(std::string_view text, options& o) {
  if (text == "raw") {
    o.frame_header = 0;
    o.framing = text;
    return {};
  }
  auto bad = [&] {
    return in_quotes(text) +
           " is not raw or length:N[:be|le][:inclusive] (N 1, 2, 4 or 8)";
  };
  constexpr std::string_view prefix = "length:";
  if (text.substr(0, prefix.size()) != prefix)
    return bad();
  auto rest = text.substr(prefix.size());
  auto colon = std::min(rest.find(':'), rest.size());
  std::size_t n = 0;
  if (!parse_count(rest.substr(0, colon), 1, 8, n).empty() ||
      (n != 1 && n != 2 && n != 4 && n != 8))
    return bad();
  bool big_endian = true;
  bool inclusive = false;
  bool order_seen = false;
  rest = rest.substr(colon);
  while (!rest.empty()) {
    rest.remove_prefix(1); // the ':'
    auto next = std::min(rest.find(':'), rest.size());
    auto word = rest.substr(0, next);
    rest = rest.substr(next);
    if ((word == "be" || word == "le") && !order_seen && !inclusive) {
      big_endian = word == "be";
      order_seen = true;
    } else if (word == "inclusive" && !inclusive) {
      inclusive = true;
    } else {
      return bad();
    }
  }
  o.frame_header = n;
  o.frame_big_endian = big_endian;
  o.frame_inclusive = inclusive;
  o.framing = text;
  return {};
}

std::string set_option(options& o, std::string_view name,
                       std::string_view value) {
  if (name == "host") {
    if (value.empty())
      return "must not be empty";
    o.host = value;
    return {};
  }
  if (name == "port") {
    std::size_t port = 0;
    auto err = parse_count(value, 1, 65535, port);
    o.port = static_cast<uint16_t>(port);
    return err;
  }
  if (name == "mode") {
    for (auto m : {bench_mode::pingpong, bench_mode::stream,
                   bench_mode::connect, bench_mode::hold}) {
      if (value == to_string(m)) {
        o.mode = m;
        return {};
      }
    }
    return in_quotes(value) + " is not one of pingpong, stream, connect, hold";
  }
  if (name == "connections")
    return parse_count(value, 1, 1'000'000, o.connections);
  if (name == "size")
    return parse_size(value, 1, max_size, o.size);
  if (name == "window")
    return parse_size(value, 1, 1 << 30, o.window);
  if (name == "duration")
    return parse_seconds(value, 0.1, o.duration);
  if (name == "warmup")
    return parse_seconds(value, 0, o.warmup);
  if (name == "threads")
    return parse_count(value, 1, 256, o.threads);
  if (name == "local-addrs")
    return parse_count(value, 1, 254, o.local_addrs);
  if (name == "tls-ca" || name == "tls-sni" || name == "tls-ciphers" ||
      name == "tls-ciphersuites") {
    if (value.empty())
      return "must not be empty";
    auto& field = name == "tls-ca"        ? o.tls_ca
                  : name == "tls-sni"     ? o.tls_sni
                  : name == "tls-ciphers" ? o.tls_ciphers
                                          : o.tls_ciphersuites;
    field = value;
    return {};
  }
  if (name == "framing")
    return parse_framing(value, o);
  if (name == "tls" || name == "tls-resume")
    return "takes no value";
  if (name == "tls-version") {
    if (value != "1.2" && value != "1.3")
      return in_quotes(value) + " is not 1.2 or 1.3";
    o.tls_version = value;
    return {};
  }
  return "unknown option (see --help)";
}

} // namespace

std::string to_string(bench_mode m) {
  switch (m) {
    case bench_mode::pingpong:
      return "pingpong";
    case bench_mode::stream:
      return "stream";
    case bench_mode::connect:
      return "connect";
    case bench_mode::hold:
      return "hold";
  }
  return "?";
}

bool parse(int argc, char** argv, options& out, std::string& err) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg{argv[i]};
    if (arg == "-h" || arg == "--help") {
      out.help = true;
      return true;
    }
    if (arg == "--allow-remote") {
      out.allow_remote = true;
      continue;
    }
    if (arg == "--json-only") {
      out.json_only = true;
      continue;
    }
    if (arg == "--tls") {
      out.tls = true;
      continue;
    }
    if (arg == "--tls-resume") {
      out.tls_resume = true;
      continue;
    }
    if (arg.substr(0, 2) != "--" || arg.size() == 2) {
      err = in_quotes(arg) + ": not an option (see --help)";
      return false;
    }
    auto name = arg.substr(2);
    std::string_view value;
    if (auto eq = name.find('='); eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      err = "--" + std::string{name} + ": missing value";
      return false;
    }
    if (auto why = set_option(out, name, value); !why.empty()) {
      err = "--" + std::string{name} + ": " + why;
      return false;
    }
  }
  if (out.port == 0) {
    err = "--port: required (1-65535)";
    return false;
  }
  // A TLS setting without --tls would otherwise measure plain TCP while the
  // user believes it measured TLS.
  if (!out.tls) {
    const std::pair<const char*, bool> tls_only[] = {
        {"--tls-ca", !out.tls_ca.empty()},
        {"--tls-sni", !out.tls_sni.empty()},
        {"--tls-version", !out.tls_version.empty()},
        {"--tls-ciphers", !out.tls_ciphers.empty()},
        {"--tls-ciphersuites", !out.tls_ciphersuites.empty()},
        {"--tls-resume", out.tls_resume},
    };
    for (auto& [opt, given] : tls_only) {
      if (given) {
        err = std::string{opt} + ": needs --tls";
        return false;
      }
    }
  }
  if (out.connections == 0)
    out.connections = out.mode == bench_mode::stream ? 4
                      : out.mode == bench_mode::hold ? 1000
                                                     : 50;
  if (out.size == 0)
    out.size = out.mode == bench_mode::stream ? 16 * 1024 : 64;
  if (out.frame_header != 0) {
    // Stream mode writes a continuous stream, not messages.
    if (out.mode == bench_mode::stream) {
      err = "--framing: only for pingpong, connect and hold modes";
      return false;
    }
    auto wire = out.size + (out.frame_inclusive ? out.frame_header : 0);
    if (out.frame_header < 8 && wire >> (8 * out.frame_header) != 0) {
      err = "--framing: a " + std::to_string(out.size) +
            "-byte message does not fit a " + std::to_string(out.frame_header) +
            "-byte length (--size)";
      return false;
    }
  }
  if (out.local_addrs == 0)
    out.local_addrs = out.mode == bench_mode::connect
                          ? 16
                          : 1 + (out.connections - 1) / 20'000;
  if (out.threads > out.connections)
    out.threads = out.connections;
  return true;
}

std::string help_text() {
  return R"(Usage: tcpactor-bench --port PORT [options]

A load generator for TCP echo servers (tcpactor-echo, bench/epoll_echo or any
other): plain epoll, no CAF. It runs for a bounded time, stops by itself and
ends with a summary plus one line "RESULT {json}" for scripts. On a terminal
it shows progress once a second.

Modes (--mode):
  pingpong  C connections; each sends S bytes and waits for the whole echo
            before it sends the next message. Latency: per round trip.
  stream    C connections push S-byte chunks continuously, at most W bytes in
            flight per connection; every echoed byte is checked against the
            pattern sent.
  connect   C concurrent loops of: connect, echo S bytes, close. Latency: one
            whole loop. Reports connections/s.
  hold      opens C connections, holds them idle for --duration, then checks
            each with one S-byte echo. No warm-up.

Options:
  --host <addr>         Server address or name. Default: 127.0.0.1.
  --port <1-65535>      Server port. Required.
  --mode <mode>         pingpong, stream, connect or hold. Default: pingpong.
  --connections <n>     C. Default: pingpong 50, stream 4, connect 50,
                        hold 1000.
  --size <size>         S, e.g. 64, 16KiB. Default: stream 16KiB, others 64.
  --window <size>       W, stream mode. Default: 256KiB.
  --duration <time>     Measured time (hold: idle time), e.g. 5, 500ms.
                        Default: 5s.
  --warmup <time>       Traffic before measuring, left out of the figures.
                        Default: 1s.
  --threads <n>         Client threads, each with its own epoll loop and a
                        share of the connections. Default: 1.
  --local-addrs <n>     Bind connections to source addresses 127.0.0.1..n
                        (IPv4 loopback servers only), so fast connect churn
                        and holds beyond ~28k connections do not run out of
                        ephemeral ports. Default: connect 16, otherwise one
                        per 20,000 connections.
  --allow-remote        Allow a server outside 127.0.0.0/8 and ::1. Without
                        it such an address is refused before any traffic.
  --framing <spec>      raw, or length:N[:be|le][:inclusive] (N 1, 2, 4 or
                        8): every message is an N-byte length (big-endian
                        unless le; inclusive: it counts the header too) and
                        S payload bytes, as tcpactor-echo --framing=length:N
                        and Erlang's {packet,N} expect; a message is done
                        when the whole frame came back. Not in stream mode.
                        Byte counts include the headers. Default: raw.
  --json-only           Print only the RESULT line.
  --tls                 Speak TLS (OpenSSL) to the server. The handshake
                        is part of setup; in connect mode it is part of
                        every loop, so connections/s counts handshakes.
  --tls-ca <file>       Verify the server's chain against this CA (PEM)
                        and its name against --tls-sni, else --host.
                        Without it nothing is verified (a note says so):
                        this is a load generator, not a client to trust.
  --tls-sni <name>      Server name to send. Default: --host unless it is
                        an IP address (then none is sent).
  --tls-version <v>     Pin the version: 1.2 or 1.3. Default: the highest
                        both sides support.
  --tls-ciphers <list>  TLS 1.2 cipher list (OpenSSL syntax).
  --tls-ciphersuites <list>
                        TLS 1.3 cipher suites, e.g. TLS_AES_128_GCM_SHA256.
  --tls-resume          Connect mode: each loop offers the session of the
                        previous loop in its slot (resumption). Default
                        off, so connect churn measures full handshakes.
  -h, --help            Print this text and exit.

Figures: messages/s counts completed echoes (stream: echoed bytes / S); MB/s
counts echoed bytes received, 1 MB = 10^6 bytes. Errors count every failed
connect, TLS handshake, read, write, early close or wrong byte over the
whole run; the summary names each kind with its cause (TLS: OpenSSL's
reason), the first 8 distinct causes per client thread.
Raises its own RLIMIT_NOFILE to the hard limit.

Exit codes: 0 no errors, 1 the run saw errors, 2 bad option, refused
address or unusable TLS setting (e.g. an unreadable --tls-ca).
)";
}

} // namespace tcpactor_bench
