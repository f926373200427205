// Graceful drain: stop accepting, tell every connection, let accepted
// traffic finish, force-close what is left at the deadline.

#include <future>
#include <thread>

#include <caf/send.hpp>

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;
using namespace tcpactor::test::posix;

namespace {

using drained_atom = caf::atom_constant<caf::atom("drained")>;

/// Echoes, and reports `drained` to `sink` when its listener drains.
connect_handler drain_aware(caf::actor sink) {
  return [sink](caf::event_based_actor*,
                const caller& conn) -> caf::expected<service> {
    conn.on_drain([sink, conn] {
      caf::anon_send(sink, drained_atom::value, conn.draining());
    });
    return echo_service();
  };
}

/// Starts a drain from another thread; the future holds the number of
/// connections the listener had to close.
std::future<uint64_t> start_drain(caf::actor_system& sys, const listener& l,
                                  std::chrono::milliseconds deadline) {
  return std::async(std::launch::async, [&sys, hdl = l.handle(), deadline] {
    caf::scoped_actor self{sys};
    uint64_t forced = UINT64_MAX;
    self->request(hdl, 60s, drain_atom::value, caf::timespan{deadline})
        .receive([&](uint64_t n) { forced = n; }, [](caf::error&) {});
    return forced;
  });
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(drain_tests, recording_fixture)

BOOST_AUTO_TEST_CASE(drain_under_load_loses_nothing) {
  constexpr int conns = 10;
  constexpr int rounds = 20;
  constexpr std::size_t size = 64 * 1024;
  auto l = listen(drain_aware(sink()));
  std::vector<raw_socket> socks;
  for (int i = 0; i < conns; ++i)
    socks.push_back(connect_blocking(l.port()));
  auto echo_round = [&](int round) {
    for (int i = 0; i < conns; ++i) {
      auto offset = static_cast<uint64_t>(round * conns + i) * size;
      auto data = pattern(offset, size);
      auto res = pump(socks[i], data, size);
      BOOST_TEST_REQUIRE(res.in == data, "connection " << i << " round "
                                                       << round << " got "
                                                       << res.in.size());
    }
  };
  echo_round(0);
  auto forced = start_drain(sys, l, 20s);
  // Every connection hears of it, and the port stops accepting.
  for (int i = 0; i < conns; ++i) {
    bool told = false;
    self->receive([&](drained_atom, bool draining) { told = draining; },
                  caf::after(10s) >> [] {});
    BOOST_TEST_REQUIRE(told);
  }
  BOOST_TEST(wait_until([&] { return !stats(l).accepting; }));
  // Traffic on accepted connections goes on, byte for byte.
  for (int round = 1; round < rounds; ++round)
    echo_round(round);
  BOOST_TEST((forced.wait_for(0s) == std::future_status::timeout),
             "the drain finished while connections were open");
  auto t0 = steady::now();
  socks.clear(); // the clients are done
  BOOST_TEST(forced.get() == 0u);
  BOOST_TEST_MESSAGE("drain completed "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(
                            steady::now() - t0)
                            .count()
                     << " ms after the last client closed");
  BOOST_TEST(stats(l).open == 0u);
}

BOOST_AUTO_TEST_CASE(deadline_closes_the_rest) {
  auto l = listen(drain_aware(sink()));
  auto idle = connect_blocking(l.port());
  auto res = pump(idle, "hi", 2);
  BOOST_TEST_REQUIRE(res.in == "hi");
  auto t0 = steady::now();
  auto forced = start_drain(sys, l, 300ms);
  BOOST_TEST(forced.get() == 1u);
  BOOST_TEST((steady::now() - t0 >= 300ms));
  // The reply means it is over, as an immediate stop's does.
  BOOST_TEST(stats(l).open == 0u);
  auto end = read_to_end(idle);
  BOOST_TEST((end.eof || end.error != 0));
}

BOOST_AUTO_TEST_CASE(drain_with_nothing_open_finishes_at_once) {
  auto l = listen(drain_aware(sink()));
  auto t0 = steady::now();
  BOOST_TEST(start_drain(sys, l, 10s).get() == 0u);
  BOOST_TEST((steady::now() - t0 < 5s));
}

BOOST_AUTO_TEST_SUITE_END()
