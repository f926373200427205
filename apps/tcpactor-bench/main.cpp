// tcpactor-bench: a load generator for TCP echo servers. See help_text().
//
// Exit codes: 0 no errors, 1 the run saw errors (or could not start),
// 2 bad option or refused address.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/resource.h>
#include <unistd.h>

#include "load_thread.hpp"
#include "options.hpp"
#include "report.hpp"
#include "tls_client.hpp"

namespace {

using namespace tcpactor_bench;
using namespace std::chrono_literals;

constexpr const char* prog = "tcpactor-bench";

int fail(int code, const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", prog, msg.c_str());
  return code;
}

bool is_loopback(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    return (ntohl(in.sin_addr.s_addr) >> 24) == 127;
  }
  if (addr.ss_family == AF_INET6) {
    auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&in6))
      return true;
    // ::ffff:127.x.y.z is IPv4 loopback too.
    return IN6_IS_ADDR_V4MAPPED(&in6) && in6.s6_addr[12] == 127;
  }
  return false;
}

std::string numeric_host(const sockaddr_storage& addr) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr,
              buf, sizeof(buf));
  else if (addr.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr,
              buf, sizeof(buf));
  return buf;
}

/// Resolves --host to the first address getaddrinfo offers.
bool resolve(const options& opts, target& out, std::string& err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  auto port = std::to_string(opts.port);
  if (int rc = getaddrinfo(opts.host.c_str(), port.c_str(), &hints, &res)) {
    err = "cannot resolve '" + opts.host + "': " + gai_strerror(rc);
    return false;
  }
  std::memcpy(&out.addr, res->ai_addr, res->ai_addrlen);
  out.len = res->ai_addrlen;
  freeaddrinfo(res);
  out.ipv4_loopback = out.addr.ss_family == AF_INET && is_loopback(out.addr);
  return true;
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; checks that the
/// connections fit.
bool raise_fd_limit(std::size_t needed, std::string& err) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    err = std::string{"getrlimit: "} + std::strerror(errno);
    return false;
  }
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < needed) {
    err = "needs " + std::to_string(needed) +
          " file descriptors, but the hard limit is " +
          std::to_string(lim.rlim_max) + " (raise it with ulimit -Hn as root)";
    return false;
  }
  return true;
}

/// Sums of every thread's counters at one moment.
struct totals {
  uint64_t messages = 0;
  uint64_t bytes = 0;
  uint64_t connects = 0;
  uint64_t completed = 0;
  uint64_t errors = 0;
  uint64_t open = 0;
  uint64_t handshakes = 0;
  uint64_t resumed = 0;
};

class bench {
public:
  bench(const options& opts, const target& dst, SSL_CTX* tls) : opts_(opts) {
    progress_ = !opts.json_only && isatty(STDOUT_FILENO);
    auto n = opts.threads;
    std::size_t first = 0;
    for (std::size_t t = 0; t < n; ++t) {
      auto count = opts.connections / n + (t < opts.connections % n ? 1 : 0);
      threads_.push_back(std::make_unique<load_thread>(opts, dst, pat_, ctl_,
                                                       first, count, tls));
      first += count;
    }
  }

  result run() {
    std::vector<std::thread> workers;
    for (auto& t : threads_)
      workers.emplace_back([&t] { t->run(); });
    result res;
    auto all_ready = [&] { return ctl_.ready.load() == threads_.size(); };
    // Setup: every thread opens its connections and bounds the time itself.
    wait(clock_type::time_point::max(), "connecting", all_ready);
    if (opts_.mode == bench_mode::hold) {
      auto held = snapshot();
      res.held = held.open;
      res.established = held.connects;
      res.connections_per_s = setup_rate(held.connects);
      enter(phase::hold);
      auto start = clock_type::now();
      wait(start + opts_.duration, "holding");
      res.seconds = seconds_since(start);
      held = snapshot();
      res.held = held.open;
      enter(phase::check);
      // Each thread reports once every held connection echoed or failed.
      auto limit = std::chrono::duration<double>(
          10.0 + static_cast<double>(opts_.connections) / 5000.0);
      wait(clock_type::now() +
               std::chrono::duration_cast<clock_type::duration>(limit),
           "checking", [&] { return ctl_.checked.load() == threads_.size(); });
      enter(phase::done);
      join(workers);
      auto end = snapshot();
      res.messages = end.messages;
      res.bytes = end.bytes;
      res.errors = end.errors;
    } else {
      enter(phase::warmup);
      wait(clock_type::now() +
               std::chrono::duration_cast<clock_type::duration>(opts_.warmup),
           "warm-up");
      auto before = snapshot();
      enter(phase::measure);
      auto start = clock_type::now();
      wait(start +
               std::chrono::duration_cast<clock_type::duration>(opts_.duration),
           "measuring");
      auto after = snapshot();
      res.seconds = seconds_since(start);
      enter(phase::done);
      join(workers);
      auto end = snapshot();
      res.bytes = after.bytes - before.bytes;
      res.messages = opts_.mode == bench_mode::stream
                         ? res.bytes / opts_.size
                         : after.messages - before.messages;
      res.established = end.connects;
      res.connections_per_s =
          opts_.mode == bench_mode::connect
              ? static_cast<double>(after.completed - before.completed) /
                    res.seconds
              : setup_rate(end.connects);
      res.errors = end.errors;
    }
    auto end = snapshot();
    res.tls_handshakes = end.handshakes;
    res.tls_resumed = end.resumed;
    for (auto& t : threads_) {
      if (res.tls_protocol.empty()) {
        res.tls_protocol = t->tls_protocol;
        res.tls_cipher = t->tls_cipher;
      }
      res.latency.merge(t->latency);
      for (auto& [kind, count] : t->error_kinds)
        res.error_kinds[kind] += count;
    }
    res.machine = probe_machine();
    return res;
  }

private:
  static double seconds_since(clock_type::time_point t) {
    return std::chrono::duration<double>(clock_type::now() - t).count();
  }

  void enter(phase p) { ctl_.now.store(p, std::memory_order_release); }

  void join(std::vector<std::thread>& workers) {
    for (auto& w : workers)
      w.join();
    if (line_open_)
      std::printf("\n");
  }

  totals snapshot() const {
    totals sum;
    for (auto& t : threads_) {
      auto& s = t->stats;
      sum.messages += s.messages.load(std::memory_order_relaxed);
      sum.bytes += s.bytes.load(std::memory_order_relaxed);
      sum.connects += s.connects.load(std::memory_order_relaxed);
      sum.completed += s.completed.load(std::memory_order_relaxed);
      sum.errors += s.errors.load(std::memory_order_relaxed);
      sum.open += s.open.load(std::memory_order_relaxed);
      sum.handshakes += s.handshakes.load(std::memory_order_relaxed);
      sum.resumed += s.resumed.load(std::memory_order_relaxed);
    }
    return sum;
  }

  double setup_rate(uint64_t connects) const {
    double slowest = 0;
    for (auto& t : threads_)
      slowest = std::max(slowest, t->setup_seconds);
    return slowest > 0 ? static_cast<double>(connects) / slowest : 0.0;
  }

  /// Sleeps until `deadline` or until `done()` holds, showing progress
  /// once a second on a terminal.
  void wait(
      clock_type::time_point deadline, const char* what,
      const std::function<bool()>& done = [] { return false; }) {
    while (!done() && clock_type::now() < deadline) {
      auto step =
          std::min<clock_type::duration>(deadline - clock_type::now(), 20ms);
      std::this_thread::sleep_for(step);
      if (progress_ && clock_type::now() >= next_tick_)
        show_progress(what);
    }
  }

  void show_progress(const char* what) {
    auto now = clock_type::now();
    auto cur = snapshot();
    if (printed_) {
      auto dt = std::chrono::duration<double>(now - last_tick_).count();
      auto msgs = opts_.mode == bench_mode::connect
                      ? cur.completed - last_.completed
                      : cur.messages - last_.messages;
      if (opts_.mode == bench_mode::stream)
        msgs = (cur.bytes - last_.bytes) / opts_.size;
      std::printf("\r%6.0fs  %-10s %10.0f msg/s %9.1f MB/s  %7llu open  "
                  "%llu errors\x1b[K",
                  std::chrono::duration<double>(now - started_).count(), what,
                  static_cast<double>(msgs) / dt,
                  static_cast<double>(cur.bytes - last_.bytes) / dt / 1e6,
                  static_cast<unsigned long long>(cur.open),
                  static_cast<unsigned long long>(cur.errors));
      std::fflush(stdout);
      line_open_ = true;
    }
    printed_ = true;
    last_ = cur;
    last_tick_ = now;
    next_tick_ = now + 1s;
  }

  const options& opts_;
  pattern pat_;
  control ctl_;
  std::vector<std::unique_ptr<load_thread>> threads_;
  bool progress_ = false;
  bool printed_ = false;   // a baseline for the rates exists
  bool line_open_ = false; // a progress line awaits its newline
  clock_type::time_point started_ = clock_type::now();
  clock_type::time_point next_tick_ = started_;
  clock_type::time_point last_tick_ = started_;
  totals last_;
};

} // namespace

int main(int argc, char** argv) {
  options opts;
  std::string err;
  if (!parse(argc, argv, opts, err))
    return fail(2, err);
  if (opts.help) {
    std::fputs(help_text().c_str(), stdout);
    return 0;
  }
  target dst;
  if (!resolve(opts, dst, err))
    return fail(2, err);
  // Checked before the first socket exists: a typo must not load someone
  // else's server.
  if (!opts.allow_remote && !is_loopback(dst.addr))
    return fail(2, "refusing " + opts.host + " (" + numeric_host(dst.addr) +
                       "): not a loopback address (127.0.0.0/8 or ::1); pass "
                       "--allow-remote to load a server on another machine");
  if (!raise_fd_limit(opts.connections + 64, err))
    return fail(2, err);
  ssl_ctx_ptr tls;
  if (opts.tls) {
    tls = make_client_context(opts, err);
    if (!tls)
      return fail(2, err);
    // On stderr, so --json-only output stays one line.
    if (opts.tls_ca.empty())
      std::fprintf(stderr,
                   "%s: note: no --tls-ca, so the server's certificate is not "
                   "verified (fine for a load generator)\n",
                   prog);
  }
  try {
    bench b{opts, dst, tls.get()};
    auto res = b.run();
    if (!opts.json_only)
      print_summary(stdout, opts, res);
    std::printf("%s\n", result_line(opts, res).c_str());
    return res.errors == 0 && res.messages > 0 ? 0 : 1;
  } catch (const std::exception& ex) {
    return fail(1, ex.what());
  }
}
