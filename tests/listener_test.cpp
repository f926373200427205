#include "tcpactor/listener.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pthread.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <caf/after.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;

namespace {

/// True if this machine can bind a TCP socket to ::1.
bool ipv6_loopback_available() {
  auto fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  addr.sin6_port = 0;
  auto ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

/// A service whose bytes handler is `f`.
template <class F>
service on_bytes(F f) {
  return service{
      std::move(f),
      [](error_atom, const caf::error&) {},
      [](closed_atom) {},
  };
}

/// A connect handler whose service upper-cases every chunk.
connect_handler upper_handler() {
  return [](caf::event_based_actor*, const caller&) -> caf::expected<service> {
    return on_bytes([](const bytes& in) {
      return bytes::make(in.size(), [&](char* buf) {
        for (std::size_t i = 0; i < in.size(); ++i)
          buf[i] = static_cast<char>(
              std::toupper(static_cast<unsigned char>(in[i])));
      });
    });
  };
}

/// Sends a request to the listener and waits for its (empty) answer.
void request_stop(caf::scoped_actor& self, const listener& l, bool immediate) {
  auto on_error = [](caf::error& err) {
    BOOST_FAIL("stop failed: " << describe(err));
  };
  if (immediate)
    self->request(l.handle(), 10s, immediate_stop_atom::value)
        .receive([] {}, on_error);
  else
    self->request(l.handle(), 10s, graceful_stop_atom::value)
        .receive([] {}, on_error);
}

/// Connects to 127.0.0.1:port and expects a refusal.
void expect_refused(runtime& rt, uint16_t port) {
  client_config cc;
  cc.host = "127.0.0.1";
  cc.port = port;
  auto res = blocking_client::connect(rt, cc);
  BOOST_TEST_REQUIRE(!res, "connect to stopped port " << port << " worked");
  BOOST_TEST((kind(res.error()) == errc::connect_failed),
             describe(res.error()));
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(listener_tests, runtime_fixture)

BOOST_AUTO_TEST_CASE(listener_echoes_via_returned_bytes) {
  auto l = listen(echo_handler());
  BOOST_TEST(l.port() != 0);
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"hello"}));
  BOOST_TEST(read_exactly(c, 5) == "hello");
}

BOOST_AUTO_TEST_CASE(listener_echoes_via_caller_write) {
  auto l = listen([](caf::event_based_actor*,
                     const caller& conn) -> caf::expected<service> {
    return on_bytes([conn](const bytes& in) {
      BOOST_CHECK(conn.write(in));
      return bytes{}; // nothing to write back
    });
  });
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"via caller"}));
  BOOST_TEST(read_exactly(c, 10) == "via caller");
  BOOST_TEST(!c.write_bytes(bytes{"twice"}));
  BOOST_TEST(read_exactly(c, 5) == "twice");
}

BOOST_AUTO_TEST_CASE(listener_writes_via_connection_actor_handle) {
  // Any actor holding the connection actor (or the caller's transport) may
  // write to the peer and close it.
  caf::scoped_actor probe{sys};
  auto l = listen(
      [hdl = caf::actor{probe}](caf::event_based_actor* self,
                                const caller& conn) -> caf::expected<service> {
        caf::anon_send(hdl, caf::actor_cast<caf::actor>(self),
                       caf::actor_cast<caf::actor>(conn.transport()));
        return echo_service();
      });
  auto c = connect(l.port());
  caf::actor conn_actor;
  caf::actor transport;
  probe->receive(
      [&](caf::actor& x, caf::actor& y) {
        conn_actor = std::move(x);
        transport = std::move(y);
      },
      caf::after(10s) >> [] { BOOST_FAIL("connect handler did not run"); });
  BOOST_TEST_REQUIRE(static_cast<bool>(conn_actor));
  BOOST_TEST_REQUIRE(static_cast<bool>(transport));
  caf::anon_send(conn_actor, write_atom::value, bytes{"from actor;"});
  BOOST_TEST(read_exactly(c, 11) == "from actor;");
  // As a request, the transport acknowledges once the bytes are written.
  probe->request(transport, 10s, write_atom::value, bytes{"acked"})
      .receive([] {},
               [](caf::error& err) {
                 BOOST_FAIL("write not acknowledged: " << describe(err));
               });
  BOOST_TEST(read_exactly(c, 5) == "acked");
  // The returned bytes still work alongside.
  BOOST_TEST(!c.write_bytes(bytes{"echo"}));
  BOOST_TEST(read_exactly(c, 4) == "echo");
  caf::anon_send(conn_actor, close_atom::value);
  auto err = read_until_error(c);
  BOOST_TEST((kind(err) == errc::peer_closed), describe(err));
}

BOOST_AUTO_TEST_CASE(caller_reports_endpoints_and_unique_ids) {
  caf::scoped_actor probe{sys};
  auto l = listen(
      [hdl = caf::actor{probe}](caf::event_based_actor*,
                                const caller& conn) -> caf::expected<service> {
        caf::anon_send(hdl, conn.id(), conn.remote_host(), conn.remote_port(),
                       conn.local_host(), conn.local_port());
        return echo_service();
      });
  std::vector<connection_id> ids;
  auto c1 = connect(l.port());
  auto c2 = connect(l.port());
  for (int i = 0; i < 2; ++i)
    probe->receive(
        [&](connection_id id, const std::string& rhost, uint16_t rport,
            const std::string& lhost, uint16_t lport) {
          ids.push_back(id);
          BOOST_TEST(id != 0u);
          BOOST_TEST(rhost == "127.0.0.1");
          BOOST_TEST(rport != 0u);
          BOOST_TEST(rport != l.port());
          BOOST_TEST(lhost == "127.0.0.1");
          BOOST_TEST(lport == l.port());
        },
        caf::after(10s) >> [] { BOOST_FAIL("connect handler did not run"); });
  BOOST_TEST_REQUIRE(ids.size() == 2u);
  BOOST_TEST(ids[0] != ids[1]);
}

BOOST_AUTO_TEST_CASE(connect_handler_error_closes_and_is_reported) {
  caf::scoped_actor observer{sys};
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto l = listen(
      [calls](caf::event_based_actor*,
              const caller&) -> caf::expected<service> {
        if (++*calls == 1)
          return make_error(errc::rejected, "not welcome");
        return echo_service();
      },
      {}, caf::actor{observer});
  auto c = connect(l.port());
  // The server closes at once: the client reads the close, not a stall.
  auto res = c.read_bytes(10s);
  BOOST_TEST_REQUIRE(!res, "the refused connection delivered data");
  BOOST_TEST((kind(res.error()) == errc::peer_closed), describe(res.error()));
  auto ev = await_event(observer, connection_event::rejected);
  BOOST_TEST_REQUIRE(static_cast<bool>(ev), "no rejected event");
  BOOST_TEST((kind(ev->reason) == errc::rejected), describe(ev->reason));
  BOOST_TEST(contains(describe(ev->reason), "not welcome"),
             describe(ev->reason));
  BOOST_TEST(contains(ev->peer, "127.0.0.1"), ev->peer);
  // The listener counted the refusal before it told the observer.
  caf::scoped_actor self{sys};
  auto st = stats_of(self, l);
  BOOST_TEST(st.rejected == 1u);
  BOOST_TEST(st.accepted == 1u);
  BOOST_TEST(st.accepting);
  // The listener goes on: the next connection is served.
  auto c2 = connect(l.port());
  BOOST_TEST(!c2.write_bytes(bytes{"welcome"}));
  BOOST_TEST(read_exactly(c2, 7) == "welcome");
}

BOOST_AUTO_TEST_CASE(connect_handler_foreign_error_becomes_rejected) {
  caf::scoped_actor observer{sys};
  auto l = listen(
      [](caf::event_based_actor*, const caller&) -> caf::expected<service> {
        return caf::make_error(caf::sec::runtime_error);
      },
      {}, caf::actor{observer});
  auto c = connect(l.port());
  auto err = read_until_error(c);
  BOOST_TEST((kind(err) == errc::peer_closed), describe(err));
  auto ev = await_event(observer, connection_event::rejected);
  BOOST_TEST_REQUIRE(static_cast<bool>(ev), "no rejected event");
  BOOST_TEST((kind(ev->reason) == errc::rejected), describe(ev->reason));
  BOOST_TEST(contains(describe(ev->reason), "runtime_error"),
             describe(ev->reason));
}

BOOST_AUTO_TEST_CASE(connect_handler_throw_is_a_rejection) {
  caf::scoped_actor observer{sys};
  auto l = listen(
      [](caf::event_based_actor*, const caller&) -> caf::expected<service> {
        throw std::runtime_error("handler blew up");
      },
      {}, caf::actor{observer});
  auto c = connect(l.port());
  auto err = read_until_error(c);
  BOOST_TEST((kind(err) == errc::peer_closed), describe(err));
  auto ev = await_event(observer, connection_event::rejected);
  BOOST_TEST_REQUIRE(static_cast<bool>(ev), "no rejected event");
  BOOST_TEST(contains(describe(ev->reason), "handler blew up"),
             describe(ev->reason));
}

BOOST_AUTO_TEST_CASE(bytes_handler_error_keeps_listener_accepting) {
  caf::scoped_actor observer{sys};
  auto l = listen(
      [](caf::event_based_actor*, const caller&) -> caf::expected<service> {
        return on_bytes([](const bytes& in) -> caf::result<bytes> {
          if (in.view() == "fail")
            return make_error(errc::io_failed, "service says no");
          return in;
        });
      },
      {}, caf::actor{observer});
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"fail"}));
  auto err = read_until_error(c);
  BOOST_TEST(
      (kind(err) == errc::peer_closed || kind(err) == errc::connection_reset),
      describe(err));
  auto ev = await_event(observer, connection_event::closed);
  BOOST_TEST_REQUIRE(static_cast<bool>(ev), "no closed event");
  BOOST_TEST((kind(ev->reason) == errc::handler_failed), describe(ev->reason));
  BOOST_TEST(contains(describe(ev->reason), "service says no"),
             describe(ev->reason));
  // The process and the listener are fine.
  auto c2 = connect(l.port());
  BOOST_TEST(!c2.write_bytes(bytes{"fine"}));
  BOOST_TEST(read_exactly(c2, 4) == "fine");
}

BOOST_AUTO_TEST_CASE(bytes_handler_throw_keeps_listener_accepting) {
  caf::scoped_actor observer{sys};
  auto l = listen(
      [](caf::event_based_actor*, const caller&) -> caf::expected<service> {
        return on_bytes([](const bytes& in) -> bytes {
          if (in.view() == "throw")
            throw std::runtime_error("boom");
          return in;
        });
      },
      {}, caf::actor{observer});
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"throw"}));
  auto err = read_until_error(c);
  BOOST_TEST(
      (kind(err) == errc::peer_closed || kind(err) == errc::connection_reset),
      describe(err));
  auto ev = await_event(observer, connection_event::closed);
  BOOST_TEST_REQUIRE(static_cast<bool>(ev), "no closed event");
  BOOST_TEST((kind(ev->reason) == errc::handler_failed), describe(ev->reason));
  auto c2 = connect(l.port());
  BOOST_TEST(!c2.write_bytes(bytes{"alive"}));
  BOOST_TEST(read_exactly(c2, 5) == "alive");
}

BOOST_AUTO_TEST_CASE(bytes_handler_throw_is_reported_as_failed) {
  // A connection actor that dies of an exception is a `failed` event for the
  // observer and counts in stats().failed; the listener itself lives on.
  caf::scoped_actor observer{sys};
  auto l = listen(
      [](caf::event_based_actor*, const caller&) -> caf::expected<service> {
        return on_bytes(
            [](const bytes&) -> bytes { throw std::runtime_error("boom"); });
      },
      {}, caf::actor{observer});
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"throw"}));
  auto ev = await_event(observer, connection_event::failed);
  BOOST_TEST_REQUIRE(static_cast<bool>(ev), "no failed event");
  BOOST_TEST(static_cast<bool>(ev->reason));
  BOOST_TEST(ev->id != 0u);
  BOOST_TEST(contains(ev->peer, "127.0.0.1"), ev->peer);
  // The counter comes from the listener's monitor, which may trail the
  // event: ask until it shows (each ask is a message round trip).
  caf::scoped_actor self{sys};
  auto deadline = std::chrono::steady_clock::now() + 10s;
  auto st = stats_of(self, l);
  while (st.failed == 0 && std::chrono::steady_clock::now() < deadline)
    st = stats_of(self, l);
  BOOST_TEST(st.failed == 1u);
  BOOST_TEST(st.accepting);
  auto c2 = connect(l.port());
  auto err = c2.write_bytes(bytes{"x"});
  BOOST_TEST(!err, describe(err));
}

BOOST_AUTO_TEST_CASE(caller_outliving_its_connection_is_safe) {
  struct slot {
    std::mutex mtx;
    caller conn;
  };
  auto kept = std::make_shared<slot>();
  caf::scoped_actor observer{sys};
  auto l = listen(
      [kept](caf::event_based_actor*,
             const caller& conn) -> caf::expected<service> {
        std::lock_guard<std::mutex> guard{kept->mtx};
        kept->conn = conn;
        return echo_service();
      },
      {}, caf::actor{observer});
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"hi"}));
  BOOST_TEST(read_exactly(c, 2) == "hi");
  BOOST_TEST(!c.close());
  auto ev = await_event(observer, connection_event::closed);
  BOOST_TEST_REQUIRE(static_cast<bool>(ev), "no closed event");
  std::lock_guard<std::mutex> guard{kept->mtx};
  BOOST_TEST_REQUIRE(static_cast<bool>(kept->conn));
  BOOST_TEST(kept->conn.id() == ev->id);
  BOOST_TEST(!kept->conn.write(bytes{"into the void"}));
  kept->conn.close(); // a no-op now, and no crash
}

BOOST_AUTO_TEST_CASE(graceful_stop_refuses_new_and_keeps_open_connections) {
  auto l = listen(echo_handler());
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"before"}));
  BOOST_TEST(read_exactly(c, 6) == "before");
  caf::scoped_actor self{sys};
  request_stop(self, l, false);
  expect_refused(*rt, l.port());
  auto st = stats_of(self, l);
  BOOST_TEST(!st.accepting);
  BOOST_TEST(st.open == 1u);
  // The open connection goes on.
  BOOST_TEST(!c.write_bytes(bytes{"after"}));
  BOOST_TEST(read_exactly(c, 5) == "after");
  // Start again: same port, accepting again.
  self->request(l.handle(), 10s, start_atom::value)
      .receive([&](uint16_t port) { BOOST_TEST(port == l.port()); },
               [](caf::error& err) {
                 BOOST_FAIL("restart failed: " << describe(err));
               });
  BOOST_TEST(stats_of(self, l).accepting);
  auto c2 = connect(l.port());
  BOOST_TEST(!c2.write_bytes(bytes{"again"}));
  BOOST_TEST(read_exactly(c2, 5) == "again");
  BOOST_TEST(!c.write_bytes(bytes{"old"}));
  BOOST_TEST(read_exactly(c, 3) == "old");
}

BOOST_AUTO_TEST_CASE(start_on_running_listener_returns_its_port) {
  auto l = listen(echo_handler());
  caf::scoped_actor self{sys};
  self->request(l.handle(), 10s, start_atom::value)
      .receive([&](uint16_t port) { BOOST_TEST(port == l.port()); },
               [](caf::error& err) {
                 BOOST_FAIL("start failed: " << describe(err));
               });
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"x"}));
  BOOST_TEST(read_exactly(c, 1) == "x");
}

BOOST_AUTO_TEST_CASE(new_listener_with_other_service_takes_over_the_port) {
  auto first = listen(echo_handler());
  auto port = first.port();
  auto c = connect(port);
  BOOST_TEST(!c.write_bytes(bytes{"abc"}));
  BOOST_TEST(read_exactly(c, 3) == "abc");
  caf::scoped_actor self{sys};
  request_stop(self, first, true);
  // The immediate stop closed the open connection.
  auto err = read_until_error(c);
  BOOST_TEST(
      (kind(err) == errc::peer_closed || kind(err) == errc::connection_reset),
      describe(err));
  auto st = stats_of(self, first);
  BOOST_TEST(!st.accepting);
  BOOST_TEST(st.open == 0u);
  listener_config lc;
  lc.port = port;
  auto second = listen(upper_handler(), lc);
  BOOST_TEST(second.port() == port);
  auto c2 = connect(port);
  BOOST_TEST(!c2.write_bytes(bytes{"abc"}));
  BOOST_TEST(read_exactly(c2, 3) == "ABC");
}

// The stop's reply waited only for the port; and a connection accepted
// between the stop's sweep and the acceptor's close stayed open.
BOOST_AUTO_TEST_CASE(immediate_stop_leaves_no_connection_open) {
  auto l = listen(echo_handler());
  std::atomic<bool> done{false};
  std::vector<posix::raw_socket> socks;
  std::thread dialer{[&] {
    while (!done) {
      auto s = posix::start_connect(l.port());
      if (s) {
        socks.push_back(std::move(s));
      }
    }
  }};
  // Stop while connections are being accepted.
  caf::scoped_actor self{sys};
  auto until = std::chrono::steady_clock::now() + 10s;
  while (stats_of(self, l).accepted < 20 &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  request_stop(self, l, true);
  auto st = stats_of(self, l);
  done = true;
  dialer.join();
  BOOST_TEST(st.open == 0u);
  BOOST_TEST(st.accepted > 0u);
  // Every socket hears of the stop: closed, reset or refused. A byte sent
  // first tells a socket the server forgot (a handshake the closing
  // listener cut short: the kernel answers with a reset) from one it still
  // serves (the byte comes back).
  std::vector<pollfd> fds;
  for (auto& s : socks) {
    // A dial after the port was freed may pick it as its own source port
    // and connect to itself (TCP simultaneous open): not ours to close.
    if (s.local_port() == l.port())
      continue;
    ::send(s.fd(), "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    fds.push_back(pollfd{s.fd(), POLLIN, 0});
  }
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::size_t heard = 0;
  std::size_t served = 0;
  while (heard < fds.size() && std::chrono::steady_clock::now() < deadline) {
    BOOST_TEST_REQUIRE(::poll(fds.data(), fds.size(), 100) >= 0);
    for (auto& p : fds) {
      if (p.fd >= 0 && p.revents != 0) {
        char buf[64];
        auto n = ::recv(p.fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
          ++served;
        if (n >= 0 || errno != EAGAIN) {
          p.fd = -1;
          ++heard;
        }
      }
      p.revents = 0;
    }
  }
  BOOST_TEST(served == 0u, served << " connections still echo after the "
                                     "immediate stop");
  BOOST_TEST(heard == fds.size(), (fds.size() - heard)
                                      << " of " << fds.size()
                                      << " connections silent after the "
                                         "immediate stop");
}

BOOST_AUTO_TEST_CASE(port_in_use_fails_with_bind_failed) {
  auto l = listen(echo_handler());
  listener_config lc;
  lc.host = "127.0.0.1";
  lc.port = l.port();
  auto res = spawn_listener(*rt, lc, echo_handler());
  BOOST_TEST_REQUIRE(!res, "second bind to port " << l.port() << " worked");
  BOOST_TEST((kind(res.error()) == errc::bind_failed), describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), "Address already in use"),
             describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), std::to_string(l.port())),
             describe(res.error()));
  // The first listener is unaffected.
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"mine"}));
  BOOST_TEST(read_exactly(c, 4) == "mine");
}

BOOST_AUTO_TEST_CASE(restart_on_taken_port_reports_bind_failed) {
  auto first = listen(echo_handler());
  caf::scoped_actor self{sys};
  request_stop(self, first, false);
  listener_config lc;
  lc.port = first.port();
  auto second = listen(echo_handler(), lc);
  self->request(first.handle(), 10s, start_atom::value)
      .receive([](uint16_t) { BOOST_FAIL("restart on a taken port worked"); },
               [](caf::error& err) {
                 BOOST_TEST((kind(err) == errc::bind_failed), describe(err));
                 BOOST_TEST(contains(describe(err), "Address already in use"),
                            describe(err));
               });
}

namespace {

/// Sockets listening on 127.0.0.1:port, as the kernel lists them.
int listening_sockets(uint16_t port) {
  std::ifstream in{"/proc/net/tcp"};
  std::string line;
  char want[32];
  std::snprintf(want, sizeof(want), "0100007F:%04X", port);
  int n = 0;
  std::getline(in, line); // header
  while (std::getline(in, line)) {
    std::istringstream fields{line};
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (local == want && state == "0A") // TCP_LISTEN
      ++n;
  }
  return n;
}

} // namespace

BOOST_AUTO_TEST_CASE(reuse_port_accepts_on_every_io_thread) {
  // The fixture runs two I/O threads: with reuse_port each gets its own
  // acceptor, the kernel spreads connections over them, and the connect
  // handler (on the I/O thread here) runs where its connection was accepted.
  using thread_atom = caf::atom_constant<caf::atom("thread")>;
  caf::scoped_actor self{sys};
  listener_config lc;
  lc.reuse_port = true;
  lc.connection.handlers_on_io_thread = true;
  auto sink = caf::actor{self};
  auto l = listen(
      [sink](caf::event_based_actor*, const caller&) -> caf::expected<service> {
        char buf[32] = {};
        pthread_getname_np(pthread_self(), buf, sizeof(buf));
        caf::anon_send(sink, thread_atom::value, std::string{buf});
        return echo_service();
      },
      lc);
  BOOST_TEST(listening_sockets(l.port()) == 2);
  std::set<std::string> threads;
  // 64 connections from distinct source ports: all on one acceptor would
  // take a hash coin landing the same way 63 times.
  for (int i = 0; i < 64; ++i) {
    auto c = connect(l.port());
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"hi"}));
    BOOST_TEST_REQUIRE(read_exactly(c, 2) == "hi");
    self->receive(
        [&](thread_atom, const std::string& name) { threads.insert(name); });
  }
  BOOST_TEST(threads.size() == 2u);
  for (auto& name : threads)
    BOOST_TEST(name.rfind("tcpactor-io-", 0) == 0u, name);
  // A stop closes every acceptor; a start opens them all again.
  request_stop(self, l, false);
  expect_refused(*rt, l.port());
  BOOST_TEST(listening_sockets(l.port()) == 0);
  self->request(l.handle(), 10s, start_atom::value)
      .receive([&](uint16_t port) { BOOST_TEST(port == l.port()); },
               [](caf::error& err) {
                 BOOST_FAIL("restart failed: " << describe(err));
               });
  BOOST_TEST(listening_sockets(l.port()) == 2);
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"again"}));
  BOOST_TEST(read_exactly(c, 5) == "again");
  request_stop(self, l, true);
  BOOST_TEST(listening_sockets(l.port()) == 0);
}

BOOST_AUTO_TEST_CASE(ipv6_loopback_echoes) {
  if (!ipv6_loopback_available()) {
    BOOST_TEST_MESSAGE("skipped: ::1 is not available on this machine");
    return;
  }
  caf::scoped_actor probe{sys};
  listener_config lc;
  lc.host = "::1";
  auto l = listen(
      [hdl = caf::actor{probe}](caf::event_based_actor*,
                                const caller& conn) -> caf::expected<service> {
        caf::anon_send(hdl, conn.remote_host());
        return echo_service();
      },
      lc);
  client_config cc;
  cc.host = "::1";
  auto c = connect(l.port(), cc);
  probe->receive([](const std::string& host) { BOOST_TEST(host == "::1"); },
                 caf::after(10s) >>
                     [] { BOOST_FAIL("connect handler did not run"); });
  BOOST_TEST(!c.write_bytes(bytes{"over v6"}));
  BOOST_TEST(read_exactly(c, 7) == "over v6");
}

BOOST_AUTO_TEST_CASE(invalid_config_and_missing_handler_are_refused) {
  listener_config lc;
  lc.backlog = 0;
  auto res = spawn_listener(*rt, lc, echo_handler());
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST((kind(res.error()) == errc::invalid_config),
             describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), "listener.backlog"),
             describe(res.error()));
  res = spawn_listener(*rt, listener_config{}, connect_handler{});
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST((kind(res.error()) == errc::invalid_config),
             describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), "on_connect"),
             describe(res.error()));
}

BOOST_AUTO_TEST_SUITE_END()
