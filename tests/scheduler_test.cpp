#include "scheduler.hpp"

#include <chrono>
#include <future>
#include <thread>

#include <caf/all.hpp>
#include <caf/policy/work_sharing.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/scheduler/coordinator.hpp>

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;

namespace {

using factory = caf::actor_system::module* (*)(caf::actor_system&);

size_t scheduler_factories(caf::actor_system_config& cfg) {
  size_t n = 0;
  for (auto& f : cfg.module_factories)
    if (auto p = f.target<factory>(); p && *p == &detail::make_scheduler)
      ++n;
  return n;
}

/// Waits until `done()` holds, for at most 10 s; false on the deadline.
/// The clock counts a cancel after the actor's down message went out, so a
/// test sees the count only some time after it saw the actor end.
template <class F>
bool eventually(F done) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::yield();
  }
  return true;
}

/// Spawns `n` actors that each quit on their first message, sends each one
/// and waits for all `n` down messages.
void end_actors(caf::actor_system& sys, int n) {
  caf::scoped_actor self{sys};
  for (int i = 0; i < n; ++i) {
    auto a = sys.spawn([](caf::event_based_actor* me) -> caf::behavior {
      return {[me](int) { me->quit(); }};
    });
    self->monitor(a);
    self->send(a, i);
  }
  int downs = 0;
  self->receive_for(downs, n)([](const caf::down_msg&) {});
}

} // namespace

BOOST_AUTO_TEST_SUITE(scheduler_tests)

BOOST_AUTO_TEST_CASE(configure_installs_the_timeout_clock_once) {
  caf::actor_system_config cfg;
  configure(cfg);
  configure(cfg);
  BOOST_TEST(scheduler_factories(cfg) == 1u);
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  BOOST_TEST(detail::timeout_clock_of(sys) != nullptr);
  using stealing = caf::scheduler::coordinator<caf::policy::work_stealing>;
  BOOST_TEST(dynamic_cast<stealing*>(&sys.scheduler()) != nullptr);
}

BOOST_AUTO_TEST_CASE(the_policy_a_user_chose_is_kept) {
  caf::actor_system_config cfg;
  configure(cfg);
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  using sharing = caf::scheduler::coordinator<caf::policy::work_sharing>;
  BOOST_TEST(dynamic_cast<sharing*>(&sys.scheduler()) != nullptr);
  BOOST_TEST(detail::timeout_clock_of(sys) != nullptr);
  end_actors(sys, 10);
}

BOOST_AUTO_TEST_CASE(a_system_without_configure_keeps_cafs_clock) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  BOOST_TEST(detail::timeout_clock_of(sys) == nullptr);
}

BOOST_FIXTURE_TEST_CASE(actors_without_timeouts_end_without_the_clock_thread,
                        runtime_fixture) {
  auto* clock = detail::timeout_clock_of(sys);
  BOOST_TEST_REQUIRE(clock != nullptr);
  auto skipped = clock->cancels_skipped();
  auto forwarded = clock->cancels_forwarded();
  end_actors(sys, 100);
  BOOST_TEST(
      eventually([&] { return clock->cancels_skipped() >= skipped + 100; }),
      "skipped " << clock->cancels_skipped() - skipped << " of 100");
  BOOST_TEST(clock->cancels_forwarded() == forwarded);
}

BOOST_FIXTURE_TEST_CASE(receive_and_request_timeouts_still_fire,
                        runtime_fixture) {
  auto* clock = detail::timeout_clock_of(sys);
  BOOST_TEST_REQUIRE(clock != nullptr);
  auto forwarded = clock->cancels_forwarded();
  // A receive timeout.
  std::promise<void> timed_out;
  sys.spawn([&](caf::event_based_actor* me) -> caf::behavior {
    return {caf::after(std::chrono::milliseconds(20)) >> [&, me] {
      timed_out.set_value();
      me->quit();
    }};
  });
  BOOST_TEST(
      (timed_out.get_future().wait_for(10s) == std::future_status::ready));
  // A request to an actor that never answers.
  auto silent = sys.spawn([](caf::event_based_actor* me) -> caf::behavior {
    return {[me](int) -> caf::result<int> {
      return me->make_response_promise<int>();
    }};
  });
  std::promise<caf::error> failed;
  sys.spawn([&, silent](caf::event_based_actor* me) {
    me->request(silent, std::chrono::milliseconds(20), 1)
        .then(
            [&, me](int) {
              failed.set_value(caf::error{});
              me->quit();
            },
            [&, me](caf::error& err) {
              failed.set_value(std::move(err));
              me->quit();
            });
  });
  auto fut = failed.get_future();
  BOOST_TEST_REQUIRE((fut.wait_for(10s) == std::future_status::ready));
  BOOST_TEST((fut.get() == caf::sec::request_timeout));
  caf::anon_send_exit(silent, caf::exit_reason::user_shutdown);
  // Both actors that set a timeout had their ends forwarded to the clock.
  BOOST_TEST(
      eventually([&] { return clock->cancels_forwarded() >= forwarded + 2; }));
}

// An actor that ends while its request is pending: the clock thread must
// drop the timeout, or it would fire at an actor that is gone.
BOOST_FIXTURE_TEST_CASE(a_pending_timeout_is_dropped_when_its_actor_ends,
                        runtime_fixture) {
  auto* clock = detail::timeout_clock_of(sys);
  BOOST_TEST_REQUIRE(clock != nullptr);
  auto forwarded = clock->cancels_forwarded();
  auto silent = sys.spawn([](caf::event_based_actor* me) -> caf::behavior {
    return {[me](int) -> caf::result<int> {
      return me->make_response_promise<int>();
    }};
  });
  caf::scoped_actor self{sys};
  auto quitter = sys.spawn([silent](caf::event_based_actor* me) {
    me->request(silent, std::chrono::milliseconds(50), 1)
        .then([](int) {}, [](caf::error&) {});
    me->quit();
  });
  self->monitor(quitter);
  self->receive([](const caf::down_msg&) {});
  BOOST_TEST(
      eventually([&] { return clock->cancels_forwarded() >= forwarded + 1; }));
  caf::anon_send_exit(silent, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_SUITE_END()
