// Runtime metrics: the sharded counters and the Prometheus rendering.

#include "tcpactor/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "metrics_registry.hpp"
#include "tcpactor/errors.hpp"

namespace tcpactor {

// -- metrics_registry ---------------------------------------------------------

namespace {

template <std::size_t N>
std::size_t bucket_of(const std::array<uint64_t, N>& bounds, uint64_t us) {
  std::size_t i = 0;
  while (i < N && us > bounds[i])
    ++i;
  return i;
}

uint64_t micros(std::chrono::steady_clock::duration d) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us > 0 ? static_cast<uint64_t>(us) : 0;
}

} // namespace

void metrics_registry::closed(
    const caf::error& reason,
    std::chrono::steady_clock::duration lifetime) noexcept {
  auto& s = local();
  std::size_t slot = 0;
  if (reason) {
    auto code = static_cast<std::size_t>(kind(reason));
    slot = code == 0 || code >= reason_slots - 1 ? reason_slots - 1 : code;
  }
  add(s.closed[slot], 1);
  if (lifetime.count() <= 0)
    return;
  auto us = micros(lifetime);
  add(s.lifetime[bucket_of(lifetime_bounds_us, us)], 1);
  add(s.lifetime_sum_us, us);
}

void metrics_registry::handshake_done(
    std::chrono::steady_clock::duration d) noexcept {
  auto& s = local();
  auto us = micros(d);
  add(s.handshake[bucket_of(handshake_bounds_us, us)], 1);
  add(s.handshake_sum_us, us);
}

namespace {

uint64_t get(const std::atomic<uint64_t>& x) {
  return x.load(std::memory_order_relaxed);
}

template <std::size_t N>
histogram_snapshot make_histogram(const std::array<uint64_t, N>& bounds,
                                  const std::array<uint64_t, N + 1>& counts,
                                  uint64_t sum_us) {
  histogram_snapshot h;
  uint64_t running = 0;
  for (std::size_t i = 0; i < N; ++i) {
    running += counts[i];
    h.bounds.push_back(static_cast<double>(bounds[i]) / 1e6);
    h.cumulative.push_back(running);
  }
  h.count = running + counts[N];
  h.sum = static_cast<double>(sum_us) / 1e6;
  return h;
}

} // namespace

void metrics_registry::snapshot(runtime_metrics& out) const {
  uint64_t accepted = 0;
  uint64_t unprocessed = 0;
  uint64_t queued = 0;
  std::array<uint64_t, reason_slots> closed{};
  std::array<uint64_t, lifetime_bounds_us.size() + 1> life{};
  std::array<uint64_t, handshake_bounds_us.size() + 1> hs{};
  uint64_t life_sum = 0;
  uint64_t hs_sum = 0;
  for (auto& s : shards_) {
    accepted += get(s.accepted);
    out.refused_over_limit += get(s.over_limit);
    out.refused_no_descriptors += get(s.no_descriptors);
    out.tls_handshake_failures += get(s.handshake_failures);
    out.bytes_received += get(s.bytes_in);
    out.bytes_sent += get(s.bytes_out);
    unprocessed += get(s.unprocessed);
    queued += get(s.queued);
    for (std::size_t i = 0; i < reason_slots; ++i)
      closed[i] += get(s.closed[i]);
    for (std::size_t i = 0; i < life.size(); ++i)
      life[i] += get(s.lifetime[i]);
    for (std::size_t i = 0; i < hs.size(); ++i)
      hs[i] += get(s.handshake[i]);
    life_sum += get(s.lifetime_sum_us);
    hs_sum += get(s.handshake_sum_us);
  }
  // The shards are read one after another, not at one instant: a gauge
  // whose + and - fell on either side of the read may dip below zero.
  auto gauge = [](uint64_t x) {
    return static_cast<int64_t>(x) < 0 ? uint64_t{0} : x;
  };
  out.unprocessed_bytes = gauge(unprocessed);
  out.queued_bytes = gauge(queued);
  out.connections_accepted = accepted;
  uint64_t closed_total = 0;
  for (std::size_t i = 0; i < reason_slots; ++i) {
    closed_total += closed[i];
    std::string name;
    if (i == 0)
      name = "clean";
    else if (i == reason_slots - 1)
      name = "other";
    else
      name = to_string(static_cast<errc>(i));
    // Codes no errc names yet are listed only once they happen.
    if (name.compare(0, 5, "errc(") == 0 && closed[i] == 0)
      continue;
    out.connections_closed.emplace_back(std::move(name), closed[i]);
  }
  out.connections_open = accepted > closed_total ? accepted - closed_total : 0;
  out.connection_lifetime = make_histogram(lifetime_bounds_us, life, life_sum);
  out.tls_handshake_duration = make_histogram(handshake_bounds_us, hs, hs_sum);
}

// -- render_prometheus --------------------------------------------------------

namespace {

// Label values escape backslash, double quote and newline (exposition
// format 0.0.4).
std::string label_value(const std::string& x) {
  std::string out;
  out.reserve(x.size());
  for (auto ch : x) {
    if (ch == '\\')
      out += "\\\\";
    else if (ch == '"')
      out += "\\\"";
    else if (ch == '\n')
      out += "\\n";
    else
      out += ch;
  }
  return out;
}

std::string number(double x) {
  if (std::isinf(x))
    return x > 0 ? "+Inf" : "-Inf";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", x);
  // %.17g shows 0.1 as 0.10000000000000001; the shortest exact form reads
  // better in `le` labels.
  for (int prec = 1; prec <= 17; ++prec) {
    char shorter[32];
    std::snprintf(shorter, sizeof(shorter), "%.*g", prec, x);
    if (std::strtod(shorter, nullptr) == x)
      return shorter;
  }
  return buf;
}

class writer {
public:
  void header(const char* name, const char* type, const char* help) {
    out_ += "# HELP tcpactor_";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE tcpactor_";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  void sample(const std::string& name, const std::string& labels,
              const std::string& value) {
    out_ += "tcpactor_";
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }

  void sample(const std::string& name, uint64_t value) {
    sample(name, {}, std::to_string(value));
  }

  void scalar(const char* name, const char* type, const char* help,
              uint64_t value) {
    header(name, type, help);
    sample(name, value);
  }

  void histogram(const char* name, const char* help,
                 const histogram_snapshot& h) {
    header(name, "histogram", help);
    std::string base = name;
    for (std::size_t i = 0; i < h.bounds.size(); ++i)
      sample(base + "_bucket", "le=\"" + number(h.bounds[i]) + "\"",
             std::to_string(h.cumulative[i]));
    sample(base + "_bucket", "le=\"+Inf\"", std::to_string(h.count));
    sample(base + "_sum", {}, number(h.sum));
    sample(base + "_count", h.count);
  }

  std::string& str() { return out_; }

private:
  std::string out_;
};

} // namespace

std::string render_prometheus(const runtime_metrics& x) {
  writer w;
  w.scalar("connections_open", "gauge", "Accepted connections not closed yet.",
           x.connections_open);
  w.scalar("connections_accepted_total", "counter",
           "Connections accepted by the listeners.", x.connections_accepted);
  w.header("connections_closed_total", "counter",
           "Accepted connections closed, by reason (clean: no error).");
  for (auto& [reason, n] : x.connections_closed)
    w.sample("connections_closed_total",
             "reason=\"" + label_value(reason) + "\"", std::to_string(n));
  w.header("connections_refused_total", "counter",
           "Connections reset at once, by cause.");
  w.sample("connections_refused_total", "cause=\"over_limit\"",
           std::to_string(x.refused_over_limit));
  w.sample("connections_refused_total", "cause=\"no_descriptors\"",
           std::to_string(x.refused_no_descriptors));
  w.scalar("tls_handshake_failures_total", "counter",
           "TLS connections closed before their handshake completed.",
           x.tls_handshake_failures);
  w.scalar("received_bytes_total", "counter",
           "Bytes read from sockets (TLS: ciphertext).", x.bytes_received);
  w.scalar("sent_bytes_total", "counter",
           "Bytes written to sockets (TLS: ciphertext).", x.bytes_sent);
  w.scalar("unprocessed_bytes", "gauge",
           "Bytes delivered to connection actors and not answered yet.",
           x.unprocessed_bytes);
  w.scalar("queued_bytes", "gauge",
           "Bytes waiting in write queues for the kernel.", x.queued_bytes);
  w.histogram("connection_lifetime_seconds",
              "Lifetime of closed connections, from open to close.",
              x.connection_lifetime);
  w.histogram("tls_handshake_duration_seconds",
              "Duration of successful server-side TLS handshakes.",
              x.tls_handshake_duration);
  if (!x.certificates.empty()) {
    w.header("tls_certificate_expiry_seconds", "gauge",
             "Seconds until the certificate's notAfter (negative: expired).");
    for (auto& c : x.certificates)
      w.sample("tls_certificate_expiry_seconds",
               "listener=\"" + label_value(c.listener) + "\",file=\"" +
                   label_value(c.file) + "\",sni=\"" + label_value(c.sni) +
                   "\"",
               std::to_string(c.seconds_left));
  }
  return std::move(w.str());
}

} // namespace tcpactor
