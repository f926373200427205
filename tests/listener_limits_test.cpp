// The listener's connection limits: max_connections and
// max_connections_per_ip. Running out of file descriptors is tested in a
// child process, by emfile_test.py, since it must lower RLIMIT_NOFILE.

#include "tcpactor/listener.hpp"

#include <atomic>
#include <memory>

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;
using namespace tcpactor::test::posix;

namespace {

/// A blocking socket bound to `source` (any 127.x works on loopback) and
/// connected to 127.0.0.1:port; an empty socket and errno if connect failed.
raw_socket try_connect_from(const char* source, uint16_t port) {
  raw_socket s{::socket(AF_INET, SOCK_STREAM, 0)};
  BOOST_TEST_REQUIRE(static_cast<bool>(s), "socket(): " << strerror(errno));
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &local.sin_addr);
  auto rc = ::bind(s.fd(), reinterpret_cast<sockaddr*>(&local), sizeof(local));
  BOOST_TEST_REQUIRE(rc == 0, "bind to " << source << ": " << strerror(errno));
  auto sa = loopback(port);
  if (::connect(s.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    auto err = errno;
    s.close();
    errno = err;
  }
  return s;
}

/// Connects from `source` or fails the test.
raw_socket connect_from(const char* source, uint16_t port) {
  auto s = try_connect_from(source, port);
  BOOST_TEST_REQUIRE(static_cast<bool>(s),
                     "connect to port " << port << ": " << strerror(errno));
  return s;
}

/// True if `s` is served: "ping" comes back.
bool echoes(const raw_socket& s) {
  auto res = pump(s, "ping", 4);
  return res.in == "ping";
}

/// Connects from `source` and expects the server to reset at once, without
/// a byte, rather than leave the connection hanging. Returns how long
/// that took.
std::chrono::milliseconds expect_refused(const char* source, uint16_t port) {
  auto t0 = steady::now();
  auto s = try_connect_from(source, port);
  if (!s) {
    // On loopback the reset can beat connect() back to us.
    BOOST_TEST(errno == ECONNRESET, "connect: " << strerror(errno));
    return std::chrono::milliseconds{0};
  }
  auto res = read_to_end(s, 5s);
  auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0);
  BOOST_TEST(!res.timed_out, "the connection over the limit was kept open");
  // SO_LINGER 0: a reset, not an orderly close.
  BOOST_TEST(res.error == ECONNRESET,
             "eof=" << res.eof << " error=" << strerror(res.error));
  BOOST_TEST(res.in.empty(), "got " << res.in.size() << " bytes");
  return took;
}

struct limits_fixture : runtime_fixture {
  limits_fixture() : observer(sys) {
    // nop
  }

  /// Echoes, and counts how often it ran.
  connect_handler counting_echo() {
    return [n = calls](caf::event_based_actor*,
                       const caller&) -> caf::expected<service> {
      ++*n;
      return echo_service();
    };
  }

  listener listen_limited(std::size_t total, std::size_t per_ip) {
    listener_config lc;
    lc.max_connections = total;
    lc.max_connections_per_ip = per_ip;
    return listen(counting_echo(), lc, caf::actor{observer});
  }

  /// Polls the listener until `pred(stats)` holds or 10 s passed.
  template <class Pred>
  listener_stats await_stats(const listener& l, Pred pred) {
    caf::scoped_actor self{sys};
    listener_stats st;
    wait_until([&] { return pred(st = stats_of(self, l)); });
    return st;
  }

  caf::scoped_actor observer;
  std::shared_ptr<std::atomic<int>> calls =
      std::make_shared<std::atomic<int>>();
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(listener_limits_tests, limits_fixture)

BOOST_AUTO_TEST_CASE(connection_over_the_limit_is_reset_counted_and_reported) {
  auto l = listen_limited(2, 0);
  auto a = connect_from("127.0.0.1", l.port());
  auto b = connect_from("127.0.0.1", l.port());
  BOOST_TEST_REQUIRE(echoes(a));
  BOOST_TEST_REQUIRE(echoes(b));
  auto took = expect_refused("127.0.0.1", l.port());
  BOOST_TEST_MESSAGE("connection over the limit closed after " << took.count()
                                                               << " ms");
  auto ev = await_event(observer, connection_event::limited);
  BOOST_TEST_REQUIRE(static_cast<bool>(ev), "no limited event");
  BOOST_TEST((kind(ev->reason) == errc::too_many_connections),
             describe(ev->reason));
  BOOST_TEST(contains(describe(ev->reason), "listener limit 2 reached"),
             describe(ev->reason));
  BOOST_TEST(contains(describe(ev->reason), ev->peer), describe(ev->reason));
  BOOST_TEST(contains(ev->peer, "127.0.0.1"), ev->peer);
  BOOST_TEST(ev->id == 0u);
  caf::scoped_actor self{sys};
  auto st = stats_of(self, l);
  BOOST_TEST(st.over_limit == 1u);
  BOOST_TEST(st.accepted == 2u);
  BOOST_TEST(st.open == 2u);
  BOOST_TEST(st.accepting);
  // It never reached the connect handler, and the others are unaffected.
  BOOST_TEST(calls->load() == 2);
  BOOST_TEST(echoes(a));
  BOOST_TEST(echoes(b));
}

BOOST_AUTO_TEST_CASE(per_ip_limit_counts_each_source_address) {
  auto l = listen_limited(0, 1);
  auto a = connect_from("127.0.0.1", l.port());
  BOOST_TEST_REQUIRE(echoes(a));
  expect_refused("127.0.0.1", l.port());
  auto ev = await_event(observer, connection_event::limited);
  BOOST_TEST_REQUIRE(static_cast<bool>(ev), "no limited event");
  BOOST_TEST((kind(ev->reason) == errc::too_many_connections),
             describe(ev->reason));
  BOOST_TEST(contains(describe(ev->reason),
                      "listener limit 1 per source address reached"),
             describe(ev->reason));
  // Another source address has its own allowance.
  auto c = connect_from("127.0.0.2", l.port());
  BOOST_TEST(echoes(c));
  BOOST_TEST(contains(ev->peer, "127.0.0.1:"), ev->peer);
  // Once 127.0.0.1's connection closed, 127.0.0.1 gets in again.
  a.close();
  auto st = await_stats(l, [](const listener_stats& x) { return x.open == 1; });
  BOOST_TEST_REQUIRE(st.open == 1u);
  auto d = connect_from("127.0.0.1", l.port());
  BOOST_TEST(echoes(d));
  st = stats_of(observer, l);
  BOOST_TEST(st.over_limit == 1u);
  BOOST_TEST(st.accepted == 3u);
  BOOST_TEST(calls->load() == 3);
}

BOOST_AUTO_TEST_CASE(listener_admits_again_once_the_count_falls) {
  // CAF 1.x locked up for good once its max_connections was reached (#2226).
  auto l = listen_limited(1, 0);
  for (int round = 1; round <= 3; ++round) {
    BOOST_TEST_CONTEXT("round " << round) {
      auto a = connect_from("127.0.0.1", l.port());
      BOOST_TEST_REQUIRE(echoes(a));
      expect_refused("127.0.0.1", l.port());
      a.close();
      auto st =
          await_stats(l, [](const listener_stats& x) { return x.open == 0; });
      BOOST_TEST_REQUIRE(st.open == 0u);
    }
  }
  auto last = connect_from("127.0.0.1", l.port());
  BOOST_TEST(echoes(last));
  caf::scoped_actor self{sys};
  auto st = stats_of(self, l);
  BOOST_TEST(st.over_limit == 3u);
  BOOST_TEST(st.accepted == 4u);
  BOOST_TEST(calls->load() == 4);
}

BOOST_AUTO_TEST_CASE(a_refused_connection_frees_nothing_it_never_held) {
  // A per-address refusal must not count against the address either: after
  // a burst of refusals, one close lets exactly one new connection in.
  auto l = listen_limited(0, 2);
  auto a = connect_from("127.0.0.1", l.port());
  auto b = connect_from("127.0.0.1", l.port());
  BOOST_TEST_REQUIRE(echoes(a));
  BOOST_TEST_REQUIRE(echoes(b));
  for (int i = 0; i < 5; ++i)
    expect_refused("127.0.0.1", l.port());
  a.close();
  await_stats(l, [](const listener_stats& x) { return x.open == 1; });
  auto c = connect_from("127.0.0.1", l.port());
  BOOST_TEST(echoes(c));
  expect_refused("127.0.0.1", l.port());
  caf::scoped_actor self{sys};
  BOOST_TEST(stats_of(self, l).over_limit == 6u);
}

BOOST_AUTO_TEST_CASE(resets_right_after_connect_leak_no_per_address_slot) {
  // Each admitted connection releases the very address it was admitted
  // under, even when the peer resets before the transport asks the kernel
  // who it is (getpeername then fails). A leaked slot would lock
  // 127.0.0.1 out for good under a limit of 1.
  auto l = listen_limited(0, 1);
  for (int i = 0; i < 1000; ++i) {
    auto s = try_connect_from("127.0.0.1", l.port());
    s.reset();
  }
  auto st = await_stats(l, [](const listener_stats& x) { return x.open == 0; });
  BOOST_TEST_REQUIRE(st.open == 0u);
  auto a = connect_from("127.0.0.1", l.port());
  BOOST_TEST(echoes(a));
  expect_refused("127.0.0.1", l.port()); // and the limit still holds
}

BOOST_AUTO_TEST_CASE(limits_are_validated_by_name) {
  listener_config lc;
  lc.max_connections = 10;
  lc.max_connections_per_ip = 11;
  auto err = lc.validate();
  BOOST_TEST((kind(err) == errc::invalid_config), describe(err));
  BOOST_TEST(contains(describe(err), "listener.max_connections_per_ip"),
             describe(err));
  lc.max_connections = 0; // unlimited in total: any per-address limit fits
  BOOST_TEST(!lc.validate(), describe(lc.validate()));
  lc.max_connections = 11;
  BOOST_TEST(!lc.validate(), describe(lc.validate()));
}

BOOST_AUTO_TEST_SUITE_END()
