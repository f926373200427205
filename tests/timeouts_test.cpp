// Per-phase timeouts: each ends its connection with its own error kind, is
// driven by the I/O loop, and is never reset by mailbox traffic.

#include <atomic>
#include <cstring>
#include <thread>

#include <caf/send.hpp>

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;
using namespace tcpactor::test::posix;

namespace {

using tick_atom = caf::atom_constant<caf::atom("tick")>;

/// The one connection's error kind and how long after `t0` its exit came.
struct outcome {
  errc kind;
  std::chrono::milliseconds after;
  std::string events;
};

outcome await_end(recording_fixture& f, steady::time_point t0) {
  BOOST_TEST_REQUIRE(f.log.collect_exits(f.self, 1), "the connection stayed");
  auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0);
  auto id = f.log.by_id.begin()->first;
  auto broken = f.log.check(id);
  BOOST_TEST(broken.empty(), broken);
  return {f.log.error_kind(id), took, f.log.render(id)};
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(timeouts_tests, recording_fixture)

BOOST_AUTO_TEST_CASE(first_byte_timeout) {
  listener_config lc;
  lc.connection.first_byte_timeout = 200ms;
  auto l = listen(recording_handler(sink()), lc);
  auto t0 = steady::now();
  auto s = connect_blocking(l.port());
  auto res = read_to_end(s);
  BOOST_TEST((res.eof || res.error != 0));
  auto x = await_end(*this, t0);
  BOOST_TEST((x.kind == errc::first_byte_timeout), x.events);
  BOOST_TEST(x.after >= 200ms);
}

BOOST_AUTO_TEST_CASE(idle_timeout_after_traffic) {
  listener_config lc;
  lc.connection.idle_timeout = 300ms;
  lc.connection.first_byte_timeout = 300ms;
  auto l = listen(recording_handler(sink()), lc);
  auto s = connect_blocking(l.port());
  // Traffic for longer than the timeout keeps the connection up: every
  // byte that arrives counts as activity.
  auto t0 = steady::now();
  auto quiet = t0;
  while (steady::now() - t0 < 900ms) {
    auto r = pump(s, "x", 1);
    BOOST_TEST_REQUIRE(r.in == "x", "connection ended early: eof="
                                        << r.eof << " err=" << r.error);
    quiet = steady::now();             // the server read our byte before this
    std::this_thread::sleep_for(30ms); // the pace of a slow client
  }
  auto res = read_to_end(s);
  BOOST_TEST((res.eof || res.error != 0));
  auto x = await_end(*this, quiet);
  BOOST_TEST((x.kind == errc::idle_timeout), x.events);
  BOOST_TEST(x.after >= 300ms);
}

BOOST_AUTO_TEST_CASE(mailbox_traffic_does_not_reset_idle) {
  listener_config lc;
  lc.connection.idle_timeout = 300ms;
  // A helper actor writes to the peer every 20 ms through the connection
  // actor's mailbox, but the peer never sends.
  auto pinger = [this](caf::event_based_actor* self,
                       const caller& conn) -> caf::expected<service> {
    auto svc = recording_handler(sink())(self, conn);
    auto target = caf::actor_cast<caf::actor>(self);
    self->spawn([target, conn](caf::event_based_actor* p) -> caf::behavior {
      p->send(p, tick_atom::value);
      p->monitor(target);
      p->set_down_handler([p](caf::down_msg&) { p->quit(); });
      return {[p, target](tick_atom) {
        p->send(target, write_atom::value, bytes{"t"});
        p->delayed_send(p, 20ms, tick_atom::value);
      }};
    });
    return svc;
  };
  auto l = listen(pinger, lc);
  auto s = connect_blocking(l.port());
  BOOST_TEST_REQUIRE(::send(s.fd(), "hi", 2, MSG_NOSIGNAL) == 2);
  auto t0 = steady::now();
  auto res = read_to_end(s);
  BOOST_TEST((res.eof || res.error != 0));
  // It heard ticks (the mailbox was busy) and still timed out.
  BOOST_TEST(res.in.size() > 2u);
  auto x = await_end(*this, t0);
  BOOST_TEST((x.kind == errc::idle_timeout), x.events);
}

BOOST_AUTO_TEST_CASE(write_stall_timeout) {
  listener_config lc;
  lc.connection.write_stall_timeout = 300ms;
  lc.connection.write_queue_limit = 32 * 1024 * 1024;
  auto hook = [](caf::event_based_actor*, const caller& c,
                 const bytes&) -> bytes {
    // Far more than the kernel buffers of a peer that never reads: loopback
    // autotunes them to ~9 MiB together here.
    constexpr std::size_t n = 1024 * 1024;
    auto big = bytes::make(n, [](char* p) { std::memset(p, 'x', n); });
    for (int i = 0; i < 24 && c.write(big); ++i)
      ;
    return bytes{};
  };
  auto l = listen(recording_handler(sink(), hook), lc);
  auto s = connect_blocking(l.port());
  auto t0 = steady::now();
  BOOST_TEST_REQUIRE(::send(s.fd(), "go", 2, MSG_NOSIGNAL) == 2);
  auto x = await_end(*this, t0);
  BOOST_TEST((x.kind == errc::write_stall_timeout), x.events);
  BOOST_TEST(x.after >= 300ms);
}

BOOST_AUTO_TEST_CASE(a_slow_reader_that_progresses_is_no_stall) {
  listener_config lc;
  lc.connection.write_stall_timeout = 400ms;
  constexpr std::size_t total = 8 * 1024 * 1024;
  auto hook = [](caf::event_based_actor*, const caller& c,
                 const bytes&) -> bytes {
    auto big = bytes::make(total, [](char* p) { std::memset(p, 'y', total); });
    c.write(big);
    c.close();
    return bytes{};
  };
  auto l = listen(recording_handler(sink(), hook), lc);
  auto s = connect_blocking(l.port());
  BOOST_TEST_REQUIRE(::send(s.fd(), "go", 2, MSG_NOSIGNAL) == 2);
  // Read 256 KiB every 50 ms: slower than the server writes, but never
  // stalled for 400 ms.
  std::size_t got = 0;
  char buf[64 * 1024];
  auto deadline = steady::now() + 30s;
  while (steady::now() < deadline) {
    std::size_t burst = 0;
    bool eof = false;
    while (burst < 256 * 1024) {
      auto n = ::recv(s.fd(), buf, sizeof(buf), 0);
      if (n <= 0) {
        eof = true;
        break;
      }
      burst += static_cast<std::size_t>(n);
    }
    got += burst;
    if (eof)
      break;
    std::this_thread::sleep_for(50ms); // the pace of a slow reader
  }
  BOOST_TEST(got == total);
  auto x = await_end(*this, steady::now());
  BOOST_TEST((x.kind == errc{}), x.events);
}

BOOST_AUTO_TEST_CASE(lifetime_exceeded_despite_traffic) {
  listener_config lc;
  lc.connection.max_lifetime = 400ms;
  auto l = listen(recording_handler(sink()), lc);
  auto t0 = steady::now();
  auto s = connect_blocking(l.port());
  bool ended = false;
  while (!ended && steady::now() - t0 < 10s) {
    auto r = pump(s, "z", 1);
    ended = r.in != "z";
  }
  BOOST_TEST(ended);
  auto x = await_end(*this, t0);
  BOOST_TEST((x.kind == errc::lifetime_exceeded), x.events);
  BOOST_TEST(x.after >= 400ms);
}

BOOST_AUTO_TEST_CASE(client_idle_timeout) {
  auto l = listen(echo_handler());
  client_config cc;
  cc.connection.idle_timeout = 200ms;
  auto c = connect(l.port(), cc);
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"a"}));
  BOOST_TEST(read_exactly(c, 1) == "a");
  auto err = read_until_error(c);
  BOOST_TEST(kind(err) == errc::idle_timeout, describe(err));
}

BOOST_AUTO_TEST_CASE(negative_timeouts_are_config_errors) {
  listener_config lc;
  lc.connection.idle_timeout = -1ms;
  auto err = lc.validate();
  BOOST_TEST(kind(err) == errc::invalid_config);
  BOOST_TEST(contains(describe(err), "listener.connection.idle_timeout"),
             describe(err));
}

BOOST_AUTO_TEST_SUITE_END()
