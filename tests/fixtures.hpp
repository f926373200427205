#pragma once

// Shared test scaffolding: a real actor system, a real runtime with real
// loopback sockets. Nothing is mocked.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <boost/test/unit_test.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "tcpactor/all.hpp"

namespace tcpactor::test {

using namespace std::chrono_literals;

/// Why `x` failed, or "ok". Boost.Test evaluates the message of a passing
/// check too, so never call `x.error()` there directly.
template <class T>
std::string why(const caf::expected<T>& x) {
  return x ? std::string{"ok"} : describe(x.error());
}

/// Reads `n` bytes or fails the test.
inline std::string read_exactly(blocking_client& c, std::size_t n,
                                std::chrono::milliseconds timeout = 10s) {
  std::string out;
  while (out.size() < n) {
    auto chunk = c.read_bytes(timeout);
    BOOST_TEST_REQUIRE(static_cast<bool>(chunk),
                       "read failed after " << out.size() << " of " << n
                                            << " bytes: " << why(chunk));
    out.append(chunk->data(), chunk->size());
  }
  return out;
}

/// An actor system (2 scheduler threads, like a small production box) and a
/// runtime with 2 I/O threads. Members are destroyed in reverse order: the
/// runtime closes every socket before the system waits for its actors.
struct runtime_fixture {
  static caf::actor_system_config& make_config(caf::actor_system_config& cfg) {
    configure(cfg);
    cfg.set("scheduler.max-threads", 2);
    return cfg;
  }

  runtime_fixture() : sys(make_config(cfg)) {
    runtime_config rc;
    rc.io_threads = 2;
    auto res = runtime::make(sys, rc);
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    rt.emplace(std::move(*res));
  }

  /// Starts a listener on 127.0.0.1, port 0.
  listener listen(connect_handler h, listener_config lc = {},
                  caf::actor observer = {}) {
    lc.host = lc.host == "0.0.0.0" ? "127.0.0.1" : lc.host;
    auto res = spawn_listener(*rt, lc, std::move(h), std::move(observer));
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    return *res;
  }

  /// Connects a blocking client to 127.0.0.1:port.
  blocking_client connect(uint16_t port, client_config cc = {}) {
    cc.host = cc.host.empty() ? "127.0.0.1" : cc.host;
    cc.port = port;
    auto res = blocking_client::connect(*rt, cc);
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    return std::move(*res);
  }

  caf::actor_system_config cfg;
  caf::actor_system sys;
  std::optional<runtime> rt;
};

/// A connect handler that echoes.
inline connect_handler echo_handler() {
  return [](caf::event_based_actor*, const caller&) -> caf::expected<service> {
    return echo_service();
  };
}

} // namespace tcpactor::test

// -- helpers for the client and listener suites ------------------------------

#include <caf/after.hpp>

namespace tcpactor::test {

/// Reads (and drops) chunks until `c` reports an error, and returns it.
inline caf::error read_until_error(blocking_client& c,
                                   std::chrono::milliseconds timeout = 10s) {
  for (;;) {
    auto chunk = c.read_bytes(timeout);
    if (!chunk)
      return std::move(chunk.error());
  }
}

/// Waits for the next `connection_event` of kind `k` at `observer`, skipping
/// events of other kinds; nothing if none comes within `timeout`.
inline std::optional<connection_event>
await_event(caf::scoped_actor& observer, connection_event::kind_t k,
            std::chrono::milliseconds timeout = 10s) {
  std::optional<connection_event> result;
  bool done = false;
  while (!done) {
    observer->receive(
        [&](connection_event& ev) {
          if (ev.kind == k) {
            result = std::move(ev);
            done = true;
          }
        },
        caf::after(timeout) >> [&] { done = true; });
  }
  return result;
}

/// The owner's side of a ping-pong over an echo peer, the first "x" already
/// sent: each echoed chunk is answered with one more "x" (the handler's
/// reply) until `n` bytes came back. Returns what came back.
inline std::string ping_pong_x(caf::scoped_actor& owner, std::size_t n) {
  std::string seen;
  while (seen.size() < n) {
    owner->receive(
        [&](bytes& chunk) -> bytes {
          seen += chunk.to_string();
          return seen.size() < n ? bytes{"x"} : bytes{};
        },
        caf::after(10s) >> [] { BOOST_FAIL("ping-pong stalled"); });
  }
  return seen;
}

/// Asks listener `l` for its counters, or fails the test.
inline listener_stats stats_of(caf::scoped_actor& self, const listener& l) {
  listener_stats result;
  self->request(l.handle(), 10s, stats_atom::value)
      .receive([&](listener_stats& x) { result = x; },
               [&](caf::error& err) {
                 BOOST_FAIL("stats request failed: " << describe(err));
               });
  return result;
}

/// True if `text` contains `part` (for checks on describe()).
inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace tcpactor::test

// -- raw POSIX peers and process probes (connection and soak tests) ----------

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <caf/after.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "proc_probe.hpp"

namespace tcpactor::test {

/// A plain POSIX socket bound to 127.0.0.1 on a kernel-chosen port, outside
/// the library. With `backlog < 0` it never listens, so connects are refused
/// while the port stays reserved.
class bound_socket {
public:
  explicit bound_socket(int backlog) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    BOOST_TEST_REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    BOOST_TEST_REQUIRE(
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    if (backlog >= 0)
      BOOST_TEST_REQUIRE(::listen(fd_, backlog) == 0);
    socklen_t len = sizeof(addr);
    BOOST_TEST_REQUIRE(
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }

  bound_socket(const bound_socket&) = delete;
  bound_socket& operator=(const bound_socket&) = delete;

  ~bound_socket() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  uint16_t port() const noexcept { return port_; }

private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

} // namespace tcpactor::test

namespace tcpactor::test::posix {

using steady = std::chrono::steady_clock;

/// Owns one raw client socket: a peer nobody in tcpactor wrote.
class raw_socket {
public:
  raw_socket() = default;
  explicit raw_socket(int fd) : fd_(fd) {
    // nop
  }
  raw_socket(raw_socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {
    // nop
  }
  raw_socket& operator=(raw_socket&& other) noexcept {
    if (this != &other) {
      close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~raw_socket() { close(); }

  int fd() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

  /// Orderly close: the peer reads EOF.
  void close() noexcept {
    if (fd_ >= 0)
      ::close(std::exchange(fd_, -1));
  }

  /// Abortive close (SO_LINGER 0): the peer sees a reset.
  void reset() noexcept {
    if (fd_ < 0)
      return;
    linger lg{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close();
  }

  void set_nonblocking() const {
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }

  /// Local port, to find the server's end of this connection.
  uint16_t local_port() const {
    sockaddr_in sa{};
    socklen_t len = sizeof(sa);
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
      return 0;
    return ntohs(sa.sin_port);
  }

private:
  int fd_ = -1;
};

inline sockaddr_in loopback(uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

/// Starts a non-blocking connect to 127.0.0.1:port; completion shows as
/// POLLOUT. Returns an empty socket (and sets errno) on failure. `rcvbuf` > 0
/// sets SO_RCVBUF first: the window is fixed at connect time.
inline raw_socket start_connect(uint16_t port, int rcvbuf = 0) {
  raw_socket s{::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)};
  if (!s)
    return s;
  if (rcvbuf > 0)
    ::setsockopt(s.fd(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  auto sa = loopback(port);
  if (::connect(s.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 &&
      errno != EINPROGRESS) {
    auto err = errno;
    s.close();
    errno = err;
  }
  return s;
}

/// Connects a blocking socket to 127.0.0.1:port or fails the test.
inline raw_socket connect_blocking(uint16_t port) {
  raw_socket s{::socket(AF_INET, SOCK_STREAM, 0)};
  BOOST_TEST_REQUIRE(static_cast<bool>(s), "socket(): " << strerror(errno));
  auto sa = loopback(port);
  auto rc = ::connect(s.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  BOOST_TEST_REQUIRE(rc == 0,
                     "connect to port " << port << ": " << strerror(errno));
  return s;
}

/// What `pump` saw.
struct pump_result {
  std::string in;   // bytes read
  bool eof = false; // the peer closed (read returned 0)
  int error = 0;    // errno of a failed read or write, e.g. ECONNRESET
  bool timed_out = false;
};

/// Writes all of `out` (then shutdown(SHUT_WR) if `shut_wr`) while reading,
/// until `expect` bytes arrived, EOF, an error or `timeout`. Works on
/// blocking and non-blocking sockets (it makes the socket non-blocking).
inline pump_result pump(const raw_socket& s, std::string_view out,
                        std::size_t expect, bool shut_wr = false,
                        std::chrono::milliseconds timeout = 10s) {
  s.set_nonblocking();
  pump_result res;
  auto deadline = steady::now() + timeout;
  std::size_t sent = 0;
  bool shut = false;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    if (sent == out.size() && shut_wr && !shut) {
      ::shutdown(s.fd(), SHUT_WR);
      shut = true;
    }
    bool want_write = sent < out.size();
    if (!want_write && res.in.size() >= expect)
      return res;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - steady::now());
    if (left.count() <= 0) {
      res.timed_out = true;
      return res;
    }
    pollfd p{s.fd(), static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)),
             0};
    if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) {
      res.error = errno;
      return res;
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      auto n = ::recv(s.fd(), buf.data(), buf.size(), 0);
      if (n > 0) {
        res.in.append(buf.data(), static_cast<std::size_t>(n));
      } else if (n == 0) {
        res.eof = true;
        return res;
      } else if (errno != EAGAIN && errno != EINTR) {
        res.error = errno;
        return res;
      }
    }
    if (want_write && (p.revents & POLLOUT)) {
      auto n =
          ::send(s.fd(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        res.error = errno;
        return res;
      }
    }
  }
}

/// Reads until EOF or error (e.g. ECONNRESET), within `timeout`.
inline pump_result read_to_end(const raw_socket& s,
                               std::chrono::milliseconds timeout = 10s) {
  return pump(s, {}, static_cast<std::size_t>(-1), false, timeout);
}

/// Deterministic bytes: position `i` of an endless stream whose period (a
/// prime) never lines up with chunk sizes.
inline char pattern_at(uint64_t i) {
  constexpr uint64_t period = 65'521;
  auto x = (i % period) * 0x9E3779B97F4A7C15ull;
  return static_cast<char>((x >> 56) ^ (x >> 29));
}

inline std::string pattern(uint64_t offset, std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    out[i] = pattern_at(offset + i);
  return out;
}

/// FNV-1a, to compare long streams without keeping them.
struct fnv1a {
  uint64_t value = 0xcbf29ce484222325ull;
  void add(const char* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      value ^= static_cast<unsigned char>(data[i]);
      value *= 0x100000001b3ull;
    }
  }
};

/// One connection driven by `run_echo_jobs`.
struct echo_job {
  raw_socket sock;
  std::string out; // sent once connected
  std::string in;  // what came back
  std::size_t sent = 0;
  bool connected = false;
  bool done() const { return connected && in.size() >= out.size(); }
};

/// Connects every job to 127.0.0.1:port at once, sends each `out` and reads
/// until as many bytes came back, all from one poll loop. Sockets stay open.
/// Returns "" or the first failure.
inline std::string run_echo_jobs(std::vector<echo_job>& jobs, uint16_t port,
                                 std::chrono::milliseconds timeout = 20s) {
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    jobs[i].sock = start_connect(port);
    if (!jobs[i].sock)
      return "connect #" + std::to_string(i) + ": " + strerror(errno);
  }
  auto deadline = steady::now() + timeout;
  std::vector<pollfd> fds;
  std::vector<std::size_t> idx;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    fds.clear();
    idx.clear();
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      auto& j = jobs[i];
      if (j.done())
        continue;
      short ev = j.connected ? POLLIN : POLLOUT;
      if (j.connected && j.sent < j.out.size())
        ev |= POLLOUT;
      fds.push_back(pollfd{j.sock.fd(), ev, 0});
      idx.push_back(i);
    }
    if (fds.empty())
      return {};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - steady::now());
    if (left.count() <= 0)
      return std::to_string(fds.size()) + " of " + std::to_string(jobs.size()) +
             " connections unfinished after " +
             std::to_string(timeout.count()) + "ms";
    if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0 &&
        errno != EINTR)
      return std::string{"poll: "} + strerror(errno);
    for (std::size_t k = 0; k < fds.size(); ++k) {
      auto& j = jobs[idx[k]];
      auto rev = fds[k].revents;
      if (rev == 0)
        continue;
      auto fail = [&](const std::string& what, int err) {
        return "connection #" + std::to_string(idx[k]) + " " + what + ": " +
               strerror(err) + " after " + std::to_string(j.in.size()) +
               " of " + std::to_string(j.out.size()) + " bytes";
      };
      if (!j.connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(j.sock.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0)
          return fail("connect", err);
        j.connected = true;
      }
      if (j.sent < j.out.size() && (rev & POLLOUT)) {
        auto n = ::send(j.sock.fd(), j.out.data() + j.sent,
                        j.out.size() - j.sent, MSG_NOSIGNAL);
        if (n > 0)
          j.sent += static_cast<std::size_t>(n);
        else if (errno != EAGAIN && errno != EINTR)
          return fail("send", errno);
      }
      if (rev & (POLLIN | POLLHUP | POLLERR)) {
        auto n = ::recv(j.sock.fd(), buf.data(), buf.size(), 0);
        if (n > 0)
          j.in.append(buf.data(), static_cast<std::size_t>(n));
        else if (n == 0)
          return fail("early EOF", 0);
        else if (errno != EAGAIN && errno != EINTR)
          return fail("recv", errno);
      }
    }
  }
}

/// Raises the soft RLIMIT_NOFILE to `want` (at most the hard limit) and
/// returns the soft limit now in force.
inline rlim_t raise_fd_limit(rlim_t want) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < want) {
    rl.rlim_cur =
        rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

/// Polls `pred` every millisecond until it holds or `timeout` passes; for
/// counters that have no event to wait on (e.g. open_connections()).
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = steady::now() + timeout;
  while (!pred()) {
    if (steady::now() >= deadline)
      return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// Kernel queue sizes of one socket: bytes not yet read (SIOCINQ) and bytes
/// not yet sent or acknowledged (SIOCOUTQ).
struct socket_queues {
  int in = 0;
  int out = 0;
};

inline socket_queues queues_of(int fd) {
  socket_queues q;
  ::ioctl(fd, SIOCINQ, &q.in);
  ::ioctl(fd, SIOCOUTQ, &q.out);
  return q;
}

/// Finds this process's own descriptor for the server end of a loopback
/// connection: local port `server_port`, peer port `client_port`. -1 if none.
inline int find_server_fd(uint16_t server_port, uint16_t client_port) {
  int found = -1;
  if (auto* dir = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(dir)) {
      if (e->d_name[0] == '.')
        continue;
      int fd = std::atoi(e->d_name);
      sockaddr_in local{};
      sockaddr_in remote{};
      socklen_t l1 = sizeof(local);
      socklen_t l2 = sizeof(remote);
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &l1) == 0 &&
          local.sin_family == AF_INET && ntohs(local.sin_port) == server_port &&
          ::getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &l2) == 0 &&
          ntohs(remote.sin_port) == client_port)
        found = fd;
    }
    ::closedir(dir);
  }
  return found;
}

} // namespace tcpactor::test::posix

namespace tcpactor::test {

/// `(event_atom, id, what, error)`: one thing a recording service saw. `what`
/// is "open", "bytes", "error", "closed" or, once the actor terminated,
/// "exit".
using event_atom = caf::atom_constant<caf::atom("t_event")>;

/// Decides a recording service's reply to one chunk.
using chunk_hook = std::function<bytes(caf::event_based_actor* self,
                                       const caller& conn, const bytes& in)>;

/// Reports one event of connection `id` to `sink`: `report("bytes")`.
inline auto event_reporter(caf::event_based_actor* self, caf::actor sink,
                           connection_id id) {
  return [self, sink, id](const char* what, caf::error err = {}) {
    self->send(sink, event_atom::value, id, std::string{what}, std::move(err));
  };
}

/// A connect handler whose service reports every event to `sink`, in order,
/// and replies via `on_bytes` (default: echo).
inline connect_handler recording_handler(caf::actor sink,
                                         chunk_hook on_bytes = {}) {
  return [sink, on_bytes](caf::event_based_actor* self,
                          const caller& conn) -> caf::expected<service> {
    auto id = conn.id();
    auto report = event_reporter(self, sink, id);
    report("open");
    // Runs after the last message the actor handled: nothing follows it.
    self->attach_functor([sink, id](const caf::error&) {
      caf::anon_send(sink, event_atom::value, id, std::string{"exit"},
                     caf::error{});
    });
    return service{
        [self, conn, on_bytes, report](const bytes& in) -> bytes {
          // Reported once the hook returned: "bytes" means "handled".
          auto out = on_bytes ? on_bytes(self, conn, in) : in;
          report("bytes");
          return out;
        },
        [report](error_atom, const caf::error& err) { report("error", err); },
        [report](closed_atom) { report("closed"); },
    };
  };
}

/// Events per connection, in arrival order.
struct event_log {
  struct entry {
    std::string what;
    caf::error err;
  };
  std::map<connection_id, std::vector<entry>> by_id;
  std::size_t exits = 0;

  /// Receives events until `n` connections reported "exit" in total or
  /// `timeout` passed. Returns true if all arrived.
  bool collect_exits(caf::scoped_actor& self, std::size_t n,
                     std::chrono::milliseconds timeout = 10s) {
    auto deadline = posix::steady::now() + timeout;
    while (exits < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - posix::steady::now());
      if (left.count() <= 0)
        return false;
      bool got = true;
      self->receive(
          [&](event_atom, connection_id id, std::string& what,
              caf::error& err) {
            if (what == "exit")
              ++exits;
            by_id[id].push_back(entry{std::move(what), std::move(err)});
          },
          caf::after(left) >> [&] { got = false; });
      if (!got)
        return exits >= n;
    }
    return true;
  }

  /// Waits for one event named `what` (keeping every event on the way).
  /// Returns its connection id, or 0 after `timeout`.
  connection_id await(caf::scoped_actor& self, const std::string& what,
                      std::chrono::milliseconds timeout = 10s) {
    auto deadline = posix::steady::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - posix::steady::now());
      if (left.count() <= 0)
        return 0;
      connection_id hit = 0;
      bool got = true;
      self->receive(
          [&](event_atom, connection_id id, std::string& x, caf::error& err) {
            if (x == "exit")
              ++exits;
            if (x == what)
              hit = id;
            by_id[id].push_back(entry{std::move(x), std::move(err)});
          },
          caf::after(left) >> [&] { got = false; });
      if (hit != 0)
        return hit;
      if (!got)
        return 0;
    }
  }

  /// "open bytes error(write_overflow) closed exit".
  std::string render(connection_id id) const {
    std::string out;
    auto i = by_id.find(id);
    if (i == by_id.end())
      return "<no events>";
    for (auto& e : i->second) {
      if (!out.empty())
        out += ' ';
      out += e.what;
      if (e.err)
        out += "(" + to_string(kind(e.err)) + ")";
    }
    return out;
  }

  /// Checks the contract: "open", any number of "bytes", at most one "error",
  /// "closed" exactly once and last, then "exit". Returns "" or what broke.
  std::string check(connection_id id) const {
    auto i = by_id.find(id);
    if (i == by_id.end())
      return "no events";
    auto& xs = i->second;
    auto bad = [&](const std::string& why) {
      return why + " in [" + render(id) + "]";
    };
    if (xs.size() < 3 || xs.front().what != "open")
      return bad("does not start with open");
    if (xs.back().what != "exit")
      return bad("does not end with exit");
    if (xs[xs.size() - 2].what != "closed")
      return bad("closed is not last");
    std::size_t closed = 0;
    std::size_t errors = 0;
    for (std::size_t k = 1; k + 1 < xs.size(); ++k) {
      if (xs[k].what == "closed")
        ++closed;
      else if (xs[k].what == "error")
        ++errors;
      else if (xs[k].what == "bytes" && errors > 0)
        return bad("bytes after error");
      else if (xs[k].what != "bytes")
        return bad("unexpected " + xs[k].what);
    }
    if (closed != 1)
      return bad(std::to_string(closed) + " closed");
    if (errors > 1)
      return bad(std::to_string(errors) + " errors");
    return {};
  }

  /// The error a connection saw, or errc{} if none.
  errc error_kind(connection_id id) const {
    auto i = by_id.find(id);
    if (i != by_id.end())
      for (auto& e : i->second)
        if (e.what == "error")
          return kind(e.err);
    return errc{};
  }
};

/// A runtime plus a scoped actor that collects what recording services saw
/// (`recording_handler(sink())`) into `log`.
struct recording_fixture : runtime_fixture {
  recording_fixture() : self(sys) {
    // nop
  }

  caf::actor sink() { return caf::actor_cast<caf::actor>(self); }

  listener_stats stats(const listener& l) { return stats_of(self, l); }

  /// Polls the listener's counters until `pred` holds or `timeout` passes.
  template <class Pred>
  listener_stats await_stats(const listener& l, Pred pred,
                             std::chrono::milliseconds timeout = 10s) {
    auto deadline = posix::steady::now() + timeout;
    auto x = stats(l);
    while (!pred(x) && posix::steady::now() < deadline) {
      std::this_thread::sleep_for(1ms);
      x = stats(l);
    }
    return x;
  }

  /// Waits until the runtime drives no connection.
  bool no_open_connections(std::chrono::milliseconds timeout = 10s) {
    return posix::wait_until([&] { return rt->open_connections() == 0; },
                             timeout);
  }

  caf::scoped_actor self;
  event_log log;
};

} // namespace tcpactor::test
