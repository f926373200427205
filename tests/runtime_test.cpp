#include "tcpactor/runtime.hpp"

#include <atomic>
#include <cstdio>
#include <future>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;

namespace {

/// Runs `f` with stderr going into a pipe; returns what was written there.
template <class F>
std::string stderr_of(F f) {
  std::fflush(stderr);
  int fds[2];
  BOOST_TEST_REQUIRE(::pipe(fds) == 0);
  int saved = ::dup(2);
  ::dup2(fds[1], 2);
  ::close(fds[1]);
  f();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof(buf))) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  return out;
}

/// Makes a runtime on a system made from `cfg`; returns its warnings.
std::string warnings_of_runtime_on(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  return stderr_of([&] {
    auto rt = runtime::make(sys);
    BOOST_TEST_REQUIRE(static_cast<bool>(rt));
  });
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(runtime_tests, runtime_fixture)

// CAF's default lets an idle worker sleep 50 us between polls, unwoken by
// a socket's enqueue; the fixture's system is made by configure().
BOOST_AUTO_TEST_CASE(configure_lets_idle_workers_poll_without_sleeping) {
  using std::chrono::microseconds;
  auto slept =
      caf::get_or(sys.config(), "work-stealing.moderate-sleep-duration",
                  caf::timespan{microseconds{50}});
  BOOST_TEST(slept.count() == 0);
  auto err = make_error(errc::idle_timeout, "127.0.0.1:1");
  BOOST_TEST(sys.render(err).rfind("tcpactor.idle_timeout", 0) == 0,
             sys.render(err));
}

BOOST_AUTO_TEST_CASE(configure_keeps_what_the_caller_set) {
  using std::chrono::microseconds;
  constexpr auto key = "work-stealing.moderate-sleep-duration";
  caf::actor_system_config mine;
  mine.set(key, caf::timespan{microseconds{20}});
  configure(mine);
  BOOST_TEST(caf::get_or(mine, key, caf::timespan{0}) ==
             caf::timespan{microseconds{20}});
}

// Without configure() a third of ping-pong's throughput went unexplained.
BOOST_AUTO_TEST_CASE(a_system_made_without_configure_is_named) {
  caf::actor_system_config plain;
  BOOST_TEST(contains(warnings_of_runtime_on(plain), "tcpactor::configure"));
  caf::actor_system_config configured;
  configure(configured);
  BOOST_TEST(warnings_of_runtime_on(configured).empty());
  caf::actor_system_config chosen;
  chosen.set("work-stealing.moderate-sleep-duration",
             caf::timespan{std::chrono::microseconds{20}});
  BOOST_TEST(warnings_of_runtime_on(chosen).empty());
}

BOOST_AUTO_TEST_CASE(runtime_rejects_bad_io_thread_count) {
  runtime_config rc;
  rc.io_threads = 5000;
  auto res = runtime::make(sys, rc);
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST(kind(res.error()) == errc::invalid_config);
  BOOST_TEST(describe(res.error()).find("runtime.io_threads") !=
             std::string::npos);
}

// Regression: a connection actor that quit after the runtime was gone
// posted to a destroyed I/O loop (segfault at daemon exit under load).
BOOST_AUTO_TEST_CASE(connection_actors_may_quit_after_the_runtime_is_gone) {
  constexpr int n = 8;
  std::promise<void> release;
  auto gate = release.get_future().share();
  auto closed = std::make_shared<std::atomic<int>>(0);
  auto l = listen([gate, closed](caf::event_based_actor*,
                                 const caller&) -> caf::expected<service> {
    return service{
        [](const bytes& in) { return in; },
        [](error_atom, const caf::error&) {},
        [gate, closed](closed_atom) {
          ++*closed;
          // Hold the actor until the runtime is destroyed.
          gate.wait();
        },
    };
  });
  std::vector<blocking_client> clients;
  for (int i = 0; i < n; ++i) {
    clients.emplace_back(connect(l.port()));
    BOOST_TEST_REQUIRE(!clients.back().write_bytes(bytes{"x"}));
    BOOST_TEST_REQUIRE(read_exactly(clients.back(), 1) == "x");
  }
  BOOST_TEST(rt->open_connections() == 2u * n);
  rt.reset();
  release.set_value();
  // ~actor_system (in the fixture) now waits for the actors to quit.
  for (auto& c : clients) {
    auto r = c.read_bytes(1s);
    BOOST_TEST(!r);
  }
}

// Shutdown stops accepting, then lets each connection flush what it queued
// (bounded by close_timeout) instead of cutting it off.
BOOST_AUTO_TEST_CASE(shutdown_flushes_queued_writes) {
  constexpr std::size_t payload = 8 * 1024 * 1024;
  auto queued = std::make_shared<std::promise<void>>();
  auto l = listen([queued](caf::event_based_actor*,
                           const caller& conn) -> caf::expected<service> {
    return service{
        [conn, queued](const bytes&) {
          // Far more than the socket buffers hold: most of it stays queued.
          conn.write(bytes::make(payload, [](char* p) {
            for (std::size_t i = 0; i < payload; ++i)
              p[i] = static_cast<char>('a' + i % 26);
          }));
          queued->set_value();
          return bytes{};
        },
        [](error_atom, const caf::error&) {},
        [](closed_atom) {},
    };
  });
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  BOOST_TEST_REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(l.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_TEST_REQUIRE(
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  BOOST_TEST_REQUIRE(::send(fd, "x", 1, 0) == 1);
  queued->get_future().wait();
  auto stopper = std::async(std::launch::async, [this] { rt->shutdown(); });
  std::size_t total = 0;
  bool intact = true;
  char buf[65536];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    for (ssize_t i = 0; i < n; ++i)
      intact = intact && buf[i] == static_cast<char>('a' + (total + i) % 26);
    total += static_cast<std::size_t>(n);
  }
  ::close(fd);
  stopper.get();
  BOOST_TEST(total == payload);
  BOOST_TEST(intact);
}

BOOST_AUTO_TEST_SUITE_END()
