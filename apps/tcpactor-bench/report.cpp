#include "report.hpp"

#include <chrono>
#include <cstdio>

#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>

#ifndef TCPACTOR_BENCH_BUILD_TYPE
#define TCPACTOR_BENCH_BUILD_TYPE "unknown"
#endif

namespace tcpactor_bench {

namespace {

std::string json_string(const std::string& str) {
  std::string out = "\"";
  for (unsigned char ch : str) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (ch < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", ch);
          out += buf;
        } else {
          out += static_cast<char>(ch);
        }
    }
  }
  return out + "\"";
}

std::string number(double x, int decimals = 3) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, x);
  return buf;
}

double per_second(double x, double seconds) {
  return seconds > 0 ? x / seconds : 0.0;
}

double us(uint64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}

/// 1234567 -> "1,234,567".
std::string grouped(uint64_t x) {
  auto digits = std::to_string(x);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return out;
}

} // namespace

machine_info probe_machine() {
  machine_info m;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    m.cores = static_cast<unsigned>(CPU_COUNT(&set));
  utsname uts{};
  if (uname(&uts) == 0)
    m.kernel = std::string{uts.sysname} + " " + uts.release;
  m.build_type = TCPACTOR_BENCH_BUILD_TYPE;
  if (m.build_type.empty())
    m.build_type = "none";
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    m.client_cpu_s =
        static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
        static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  return m;
}

void print_summary(std::FILE* out, const options& opts, const result& res) {
  auto mode = to_string(opts.mode);
  std::fprintf(out, "tcpactor-bench %s -> %s port %u: %zu connection%s x %zu B",
               mode.c_str(), opts.host.c_str(), opts.port, opts.connections,
               opts.connections == 1 ? "" : "s", opts.size);
  if (opts.mode == bench_mode::stream)
    std::fprintf(out, ", window %zu B", opts.window);
  if (opts.frame_header != 0)
    std::fprintf(out, ", framing %s", opts.framing.c_str());
  std::fprintf(out, ", %zu thread%s\n", opts.threads,
               opts.threads == 1 ? "" : "s");
  if (opts.mode == bench_mode::hold)
    std::fprintf(out, "  held           %s of %zu connections for %.1f s\n",
                 grouped(res.held).c_str(), opts.connections, res.seconds);
  else
    std::fprintf(out, "  measured       %.2f s after %.1f s warm-up\n",
                 res.seconds,
                 std::chrono::duration<double>(opts.warmup).count());
  if (opts.mode == bench_mode::hold) {
    // Rates over an idle period mean nothing; the check is what counts.
    std::fprintf(out, "  checked        %s echoes after the hold\n",
                 grouped(res.messages).c_str());
  } else {
    std::fprintf(out, "  messages/s     %s   (%s messages)\n",
                 grouped(static_cast<uint64_t>(per_second(
                             static_cast<double>(res.messages), res.seconds)))
                     .c_str(),
                 grouped(res.messages).c_str());
    std::fprintf(out, "  MB/s           %.1f   (echoed bytes received%s)\n",
                 per_second(static_cast<double>(res.bytes), res.seconds) / 1e6,
                 opts.frame_header != 0 ? ", headers included" : "");
  }
  if (res.latency.count() > 0)
    std::fprintf(out,
                 "  latency us     p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f"
                 "   (%s samples%s)\n",
                 us(res.latency.quantile(0.5)), us(res.latency.quantile(0.99)),
                 us(res.latency.quantile(0.999)), us(res.latency.max()),
                 grouped(res.latency.count()).c_str(),
                 opts.mode == bench_mode::connect ? ", connect to close"
                 : opts.mode == bench_mode::hold  ? ", one echo each"
                                                  : ", round trips");
  std::fprintf(out, "  connections/s  %s   (%s)\n",
               grouped(static_cast<uint64_t>(res.connections_per_s)).c_str(),
               opts.mode == bench_mode::connect ? "full loops"
                                                : "while opening them");
  if (opts.tls)
    std::fprintf(out,
                 "  tls            %s %s, server %s, %s handshakes (%s "
                 "resumed)\n",
                 res.tls_protocol.empty() ? "(no handshake completed)"
                                          : res.tls_protocol.c_str(),
                 res.tls_cipher.c_str(),
                 opts.tls_ca.empty() ? "not verified" : "verified",
                 grouped(res.tls_handshakes).c_str(),
                 grouped(res.tls_resumed).c_str());
  std::fprintf(out, "  errors         %s\n", grouped(res.errors).c_str());
  for (auto& [kind, count] : res.error_kinds)
    std::fprintf(out, "    %s x %s\n", grouped(count).c_str(), kind.c_str());
  std::fprintf(out,
               "  machine        %u cores, %s, build %s, client CPU %.2f s\n",
               res.machine.cores, res.machine.kernel.c_str(),
               res.machine.build_type.c_str(), res.machine.client_cpu_s);
}

std::string result_line(const options& opts, const result& res) {
  std::string j = "RESULT {";
  auto field = [&](const std::string& key, const std::string& value) {
    if (j.back() != '{')
      j += ',';
    j += json_string(key) + ':' + value;
  };
  auto uint = [](uint64_t x) { return std::to_string(x); };
  field("tool", json_string("tcpactor-bench"));
  field("mode", json_string(to_string(opts.mode)));
  field("host", json_string(opts.host));
  field("port", uint(opts.port));
  field("tls", opts.tls ? "true" : "false");
  auto or_null = [&](const std::string& s) {
    return opts.tls && !s.empty() ? json_string(s) : "null";
  };
  field("tls_protocol", or_null(res.tls_protocol));
  field("tls_cipher", or_null(res.tls_cipher));
  field("tls_verify", opts.tls && !opts.tls_ca.empty() ? "true" : "false");
  field("tls_resume", opts.tls_resume ? "true" : "false");
  field("tls_handshakes", opts.tls ? uint(res.tls_handshakes) : "null");
  field("tls_resumed", opts.tls ? uint(res.tls_resumed) : "null");
  field("connections", uint(opts.connections));
  field("size", uint(opts.size));
  field("window", opts.mode == bench_mode::stream ? uint(opts.window) : "null");
  field("framing", json_string(opts.framing));
  field("threads", uint(opts.threads));
  field("local_addrs", uint(opts.local_addrs));
  field("warmup_s",
        opts.mode == bench_mode::hold
            ? "0"
            : number(std::chrono::duration<double>(opts.warmup).count()));
  field("seconds", number(res.seconds));
  field("messages", uint(res.messages));
  auto hold = opts.mode == bench_mode::hold; // no rates over an idle period
  field("messages_per_s",
        hold
            ? "null"
            : number(per_second(static_cast<double>(res.messages), res.seconds),
                     1));
  field("bytes", uint(res.bytes));
  field("mb_per_s",
        hold ? "null"
             : number(per_second(static_cast<double>(res.bytes), res.seconds) /
                      1e6));
  if (res.latency.count() > 0) {
    field("latency_us",
          "{\"p50\":" + number(us(res.latency.quantile(0.5))) +
              ",\"p99\":" + number(us(res.latency.quantile(0.99))) +
              ",\"p999\":" + number(us(res.latency.quantile(0.999))) +
              ",\"max\":" + number(us(res.latency.max())) +
              ",\"samples\":" + uint(res.latency.count()) + "}");
  } else {
    field("latency_us", "null");
  }
  field("connections_established", uint(res.established));
  field("connections_per_s", number(res.connections_per_s, 1));
  field("held", opts.mode == bench_mode::hold ? uint(res.held) : "null");
  field("errors", uint(res.errors));
  std::string kinds = "{";
  for (auto& [kind, count] : res.error_kinds) {
    if (kinds.size() > 1)
      kinds += ',';
    kinds += json_string(kind) + ':' + uint(count);
  }
  field("error_kinds", kinds + "}");
  field("machine",
        "{\"cores\":" + std::to_string(res.machine.cores) +
            ",\"kernel\":" + json_string(res.machine.kernel) +
            ",\"build_type\":" + json_string(res.machine.build_type) +
            ",\"client_cpu_s\":" + number(res.machine.client_cpu_s) + "}");
  return j + "}";
}

} // namespace tcpactor_bench
