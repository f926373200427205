#include "tcpactor/reconnecting_client.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/after.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;

namespace {

using steady = std::chrono::steady_clock;

/// One event the owner of a reconnecting client received.
struct event {
  enum kind_t { none, connected, disconnected, data, unsent, gave_up, closed };
  kind_t kind = none;
  uint32_t attempt = 0;
  caf::error err;
  std::string text; // peer of `connected`, payload of `data`
  uint64_t writes = 0;
  uint64_t count = 0; // bytes of `unsent` and `gave_up`
  steady::time_point at;
  bool from_client = false; // sent by the reconnecting client handle
};

std::string name_of(event::kind_t k) {
  static const char* const names[] = {"none",  "connected", "disconnected",
                                      "data",  "unsent",    "gave_up",
                                      "closed"};
  return names[k];
}

/// Receives the next event at `owner` (answering chunks with nothing), or
/// `none` after `timeout`.
event next_event(caf::scoped_actor& owner, const reconnecting_client_actor& hdl,
                 std::chrono::milliseconds timeout = 10s) {
  event ev;
  auto hdl_ptr = caf::actor_cast<caf::strong_actor_ptr>(hdl);
  // current_sender() is only valid inside a handler.
  auto mark = [&] { ev.from_client = owner->current_sender() == hdl_ptr; };
  owner->receive(
      [&](connected_atom, uint32_t attempt, std::string& peer) {
        ev.kind = event::connected;
        mark();
        ev.attempt = attempt;
        ev.text = std::move(peer);
      },
      [&](disconnected_atom, uint32_t attempt, caf::error& err) {
        ev.kind = event::disconnected;
        mark();
        ev.attempt = attempt;
        ev.err = std::move(err);
      },
      [&](bytes& chunk) -> bytes {
        ev.kind = event::data;
        mark();
        ev.text = chunk.to_string();
        return {};
      },
      [&](unsent_atom, uint64_t writes, uint64_t n, caf::error& err) {
        ev.kind = event::unsent;
        mark();
        ev.writes = writes;
        ev.count = n;
        ev.err = std::move(err);
      },
      [&](gave_up_atom, caf::error& err, uint64_t n) {
        ev.kind = event::gave_up;
        mark();
        ev.err = std::move(err);
        ev.count = n;
      },
      [&](closed_atom) {
        ev.kind = event::closed;
        mark();
      },
      caf::after(timeout) >> [] {});
  ev.at = steady::now();
  return ev;
}

/// Skips events until one of kind `k` (failing on `closed` unless asked
/// for); appends `data` payloads to `echoed` on the way.
event await(caf::scoped_actor& owner, const reconnecting_client_actor& hdl,
            event::kind_t k, std::string* echoed = nullptr) {
  for (;;) {
    auto ev = next_event(owner, hdl);
    BOOST_TEST_REQUIRE(ev.kind != event::none,
                       "no " << name_of(k) << " event within 10s");
    BOOST_TEST(ev.from_client, name_of(ev.kind) << " from a stranger");
    if (ev.kind == event::data && echoed)
      *echoed += ev.text;
    if (ev.kind == k)
      return ev;
    BOOST_TEST_REQUIRE(ev.kind != event::closed,
                       "closed while waiting for " << name_of(k));
    BOOST_TEST_REQUIRE(ev.kind != event::gave_up, "gave up while waiting for "
                                                      << name_of(k) << ": "
                                                      << describe(ev.err));
  }
}

/// Reads echoed bytes until `n` arrived, skipping reconnect events.
std::string await_echo(caf::scoped_actor& owner,
                       const reconnecting_client_actor& hdl, std::size_t n) {
  std::string echoed;
  while (echoed.size() < n)
    await(owner, hdl, event::data, &echoed);
  return echoed;
}

using write_result = std::pair<std::string, caf::error>;

/// Sends write requests to a reconnecting client in the order it is told,
/// without waiting for their answers, and reports each answer to `probe` as
/// `(std::string payload, caf::error)` (no error: acknowledged). Also
/// forwards `close_atom`, so a close lands behind the writes before it.
caf::behavior writer(caf::event_based_actor* self,
                     reconnecting_client_actor hdl, caf::actor probe) {
  return {
      [=](const std::string& payload) {
        self->request(hdl, caf::infinite, write_atom::value, bytes{payload})
            .then([=] { self->send(probe, payload, caf::error{}); },
                  [=](caf::error& err) { self->send(probe, payload, err); });
      },
      [=](close_atom) { self->send(hdl, close_atom::value); },
  };
}

/// Owns a writer actor and stops it at scope exit.
struct writer_handle {
  writer_handle(caf::actor_system& sys, const reconnecting_client_actor& hdl,
                caf::scoped_actor& probe)
      : actor(sys.spawn(writer, hdl, caf::actor{probe})) {
    // nop
  }
  ~writer_handle() {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  }
  void write(const std::string& payload) { caf::anon_send(actor, payload); }
  void close() { caf::anon_send(actor, close_atom::value); }
  caf::actor actor;
};

/// The next write answer at `probe`, or fails the test.
write_result next_result(caf::scoped_actor& probe,
                         std::chrono::milliseconds timeout = 10s) {
  write_result res;
  bool got = false;
  probe->receive(
      [&](std::string& payload, caf::error& err) {
        res = {std::move(payload), std::move(err)};
        got = true;
      },
      caf::after(timeout) >> [] {});
  BOOST_TEST_REQUIRE(got, "no write answer within " << timeout.count() << "ms");
  return res;
}

/// No write answer arrives at `probe` within `wait`.
void expect_quiet(caf::scoped_actor& probe, std::chrono::milliseconds wait) {
  probe->receive(
      [](std::string& payload, caf::error& err) {
        BOOST_FAIL("unexpected answer to " << payload << ": " << describe(err));
      },
      caf::after(wait) >> [] {});
}

/// Small, fast backoff for tests that reconnect.
reconnecting_client_config fast_config(uint16_t port) {
  reconnecting_client_config rc;
  rc.client.host = "127.0.0.1";
  rc.client.port = port;
  rc.initial_backoff = 20ms;
  rc.max_backoff = 100ms;
  return rc;
}

void stop_listener(caf::scoped_actor& self, const listener& l) {
  // The reply comes once the port is free: from then on connects are
  // refused.
  self->request(l.handle(), 10s, immediate_stop_atom::value)
      .receive([] {},
               [](caf::error& err) {
                 BOOST_FAIL("immediate_stop failed: " << describe(err));
               });
}

void restart_listener(caf::scoped_actor& self, const listener& l) {
  self->request(l.handle(), 10s, start_atom::value)
      .receive([&](uint16_t port) { BOOST_TEST(port == l.port()); },
               [](caf::error& err) {
                 BOOST_FAIL("restart failed: " << describe(err));
               });
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(reconnect_tests, runtime_fixture)

BOOST_AUTO_TEST_CASE(connects_and_echoes_through_a_listener) {
  auto l = listen(echo_handler());
  caf::scoped_actor owner{sys};
  auto hdl =
      spawn_reconnecting_client(*rt, fast_config(l.port()), caf::actor{owner});
  BOOST_TEST_REQUIRE(static_cast<bool>(hdl), why(hdl));
  auto ev = await(owner, *hdl, event::connected);
  BOOST_TEST(ev.attempt == 1u);
  BOOST_TEST(ev.text == "127.0.0.1:" + std::to_string(l.port()));
  owner->request(*hdl, 10s, write_atom::value, bytes{"hello"})
      .receive([] {},
               [](caf::error& err) {
                 BOOST_FAIL("write not acknowledged: " << describe(err));
               });
  BOOST_TEST(await_echo(owner, *hdl, 5) == "hello");
  caf::anon_send(*hdl, close_atom::value);
  // An orderly close: no disconnected, no unsent, just closed, and last.
  ev = next_event(owner, *hdl);
  BOOST_TEST(name_of(ev.kind) == "closed");
  BOOST_TEST(ev.from_client);
  ev = next_event(owner, *hdl, 200ms);
  BOOST_TEST(name_of(ev.kind) == "none", "event after closed");
}

BOOST_AUTO_TEST_CASE(server_close_reconnects_and_sends_held_writes_in_order) {
  auto l = listen(echo_handler());
  caf::scoped_actor owner{sys};
  caf::scoped_actor probe{sys};
  auto hdl =
      spawn_reconnecting_client(*rt, fast_config(l.port()), caf::actor{owner});
  BOOST_TEST_REQUIRE(static_cast<bool>(hdl), why(hdl));
  writer_handle w{sys, *hdl, probe};
  await(owner, *hdl, event::connected);
  w.write("before ");
  BOOST_TEST(await_echo(owner, *hdl, 7) == "before ");
  BOOST_TEST(!next_result(probe).second);
  stop_listener(owner, l);
  auto ev = await(owner, *hdl, event::disconnected);
  BOOST_TEST(ev.attempt == 1u);
  BOOST_TEST(static_cast<bool>(ev.err), "disconnected without a reason");
  // Nothing listens now, so these are held.
  std::vector<std::string> parts{"one ", "two ", "three ", "four"};
  std::string expected;
  for (auto& x : parts) {
    w.write(x);
    expected += x;
  }
  // Let at least one attempt fail while they wait.
  ev = await(owner, *hdl, event::disconnected);
  BOOST_TEST((kind(ev.err) == errc::connect_failed), describe(ev.err));
  expect_quiet(probe, 0ms);
  restart_listener(owner, l);
  std::string echoed;
  ev = await(owner, *hdl, event::connected, &echoed);
  BOOST_TEST(ev.attempt >= 1u);
  BOOST_TEST(echoed.empty(), "data before reconnecting: " << echoed);
  BOOST_TEST(await_echo(owner, *hdl, expected.size()) == expected);
  for (auto& x : parts) {
    auto res = next_result(probe);
    BOOST_TEST(res.first == x, "answers out of order");
    BOOST_TEST(!res.second, describe(res.second));
  }
  // Still usable after the reconnect.
  w.write("after");
  BOOST_TEST(await_echo(owner, *hdl, 5) == "after");
  BOOST_TEST(!next_result(probe).second);
}

BOOST_AUTO_TEST_CASE(gives_up_after_max_attempts_with_growing_backoff) {
  bound_socket reserved{-1}; // bound, not listening: the kernel refuses
  caf::scoped_actor owner{sys};
  caf::scoped_actor probe{sys};
  auto rc = fast_config(reserved.port());
  rc.max_attempts = 3;
  rc.initial_backoff = 100ms;
  rc.multiplier = 3.0;
  rc.max_backoff = 10s;
  rc.jitter = 0.5; // equal jitter: waits in [50, 100] ms, then [150, 300] ms
  auto hdl = spawn_reconnecting_client(*rt, rc, caf::actor{owner});
  BOOST_TEST_REQUIRE(static_cast<bool>(hdl), why(hdl));
  writer_handle w{sys, *hdl, probe};
  w.write("lost"); // held, and reported as unsent when it gives up
  std::vector<event> seen;
  for (;;) {
    auto ev = next_event(owner, *hdl);
    BOOST_TEST_REQUIRE(ev.kind != event::none,
                       "stalled after " << seen.size() << " events");
    BOOST_TEST(ev.from_client);
    seen.push_back(ev);
    if (ev.kind == event::closed)
      break;
  }
  std::vector<std::string> kinds;
  for (auto& ev : seen)
    kinds.emplace_back(name_of(ev.kind));
  std::vector<std::string> want{"disconnected", "disconnected", "disconnected",
                                "unsent",       "gave_up",      "closed"};
  BOOST_TEST(kinds == want, boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(seen.size() == want.size());
  for (uint32_t i = 0; i < 3; ++i) {
    BOOST_TEST(seen[i].attempt == i + 1);
    BOOST_TEST((kind(seen[i].err) == errc::connect_failed),
               describe(seen[i].err));
  }
  BOOST_TEST(seen[3].writes == 1u);
  BOOST_TEST(seen[3].count == 4u);
  BOOST_TEST((kind(seen[4].err) == errc::connect_failed),
             describe(seen[4].err));
  BOOST_TEST(seen[4].count == 4u);
  auto res = next_result(probe);
  BOOST_TEST(res.first == "lost");
  BOOST_TEST((kind(res.second) == errc::closed), describe(res.second));
  // Refused connects on loopback take microseconds, so the time between two
  // failures is the backoff; the upper bounds leave room for a loaded box.
  using ms = std::chrono::milliseconds;
  auto d1 = std::chrono::duration_cast<ms>(seen[1].at - seen[0].at);
  auto d2 = std::chrono::duration_cast<ms>(seen[2].at - seen[1].at);
  BOOST_TEST_MESSAGE("waits: " << d1.count() << "ms, " << d2.count() << "ms");
  BOOST_TEST(d1 >= 50ms, d1.count() << "ms");
  BOOST_TEST(d1 <= 100ms + 1s, d1.count() << "ms");
  BOOST_TEST(d2 >= 150ms, d2.count() << "ms");
  BOOST_TEST(d2 <= 300ms + 1s, d2.count() << "ms");
  BOOST_TEST(d2 >= d1, d1.count() << "ms then " << d2.count() << "ms");
}

BOOST_AUTO_TEST_CASE(write_beyond_buffer_bound_is_refused_others_delivered) {
  auto l = listen(echo_handler());
  caf::scoped_actor owner{sys};
  caf::scoped_actor probe{sys};
  stop_listener(owner, l); // start disconnected
  auto rc = fast_config(l.port());
  rc.max_buffered_bytes = 10;
  auto hdl = spawn_reconnecting_client(*rt, rc, caf::actor{owner});
  BOOST_TEST_REQUIRE(static_cast<bool>(hdl), why(hdl));
  writer_handle w{sys, *hdl, probe};
  w.write("12345");
  w.write("6789");
  w.write("abc"); // 9 + 3 > 10: refused
  w.write("0");   // 9 + 1 fits: the refused write took no budget
  auto res = next_result(probe);
  BOOST_TEST(res.first == "abc");
  BOOST_TEST((kind(res.second) == errc::write_overflow), describe(res.second));
  BOOST_TEST(contains(describe(res.second), "max_buffered_bytes"),
             describe(res.second));
  auto ev = await(owner, *hdl, event::unsent);
  BOOST_TEST(ev.writes == 1u);
  BOOST_TEST(ev.count == 3u);
  BOOST_TEST((kind(ev.err) == errc::write_overflow), describe(ev.err));
  expect_quiet(probe, 0ms); // the others wait for a connection
  restart_listener(owner, l);
  await(owner, *hdl, event::connected);
  BOOST_TEST(await_echo(owner, *hdl, 10) == "1234567890");
  for (auto* x : {"12345", "6789", "0"}) {
    res = next_result(probe);
    BOOST_TEST(res.first == x);
    BOOST_TEST(!res.second, describe(res.second));
  }
}

BOOST_AUTO_TEST_CASE(close_while_disconnected_answers_held_writes) {
  bound_socket reserved{-1};
  caf::scoped_actor owner{sys};
  caf::scoped_actor probe{sys};
  auto rc = fast_config(reserved.port());
  rc.initial_backoff = 5s; // after the first failure, it waits
  rc.max_backoff = 5s;
  auto hdl = spawn_reconnecting_client(*rt, rc, caf::actor{owner});
  BOOST_TEST_REQUIRE(static_cast<bool>(hdl), why(hdl));
  writer_handle w{sys, *hdl, probe};
  await(owner, *hdl, event::disconnected);
  auto t0 = steady::now();
  w.write("abc");
  w.write("defg");
  w.close();
  w.write("late"); // after close: refused too
  std::vector<event> tail;
  for (;;) {
    auto ev = next_event(owner, *hdl);
    BOOST_TEST_REQUIRE(ev.kind != event::none, "no closed within 10s");
    BOOST_TEST(ev.from_client);
    BOOST_TEST(ev.kind != event::connected);
    BOOST_TEST(ev.kind != event::gave_up);
    BOOST_TEST(ev.kind != event::disconnected, "attempted while waiting");
    tail.push_back(ev);
    if (ev.kind == event::closed)
      break;
  }
  // The close does not wait for the backoff timer.
  BOOST_TEST((steady::now() - t0 < 4s), "closed only after the backoff");
  // The held writes first; then "late", if it came before the actor quit;
  // then closed.
  BOOST_TEST_REQUIRE(tail.size() >= 2u);
  BOOST_TEST(name_of(tail[0].kind) == "unsent");
  BOOST_TEST(tail[0].writes == 2u);
  BOOST_TEST(tail[0].count == 7u);
  BOOST_TEST((kind(tail[0].err) == errc::closed), describe(tail[0].err));
  if (tail.size() == 3u) {
    BOOST_TEST(name_of(tail[1].kind) == "unsent");
    BOOST_TEST(tail[1].count == 4u);
    BOOST_TEST((kind(tail[1].err) == errc::closed), describe(tail[1].err));
  }
  BOOST_TEST(tail.size() <= 3u);
  for (auto* x : {"abc", "defg"}) {
    auto res = next_result(probe);
    BOOST_TEST(res.first == x);
    BOOST_TEST((kind(res.second) == errc::closed), describe(res.second));
  }
  // The write behind the close is refused, by the client or, once it quit,
  // by CAF: nothing is left hanging.
  auto res = next_result(probe);
  BOOST_TEST(res.first == "late");
  BOOST_TEST(static_cast<bool>(res.second), "a write after close succeeded");
  BOOST_TEST(name_of(next_event(owner, *hdl, 200ms).kind) == "none");
}

BOOST_AUTO_TEST_CASE(owner_reply_to_a_chunk_is_written_back) {
  // Owner and echo server play ping-pong through the relay.
  auto l = listen(echo_handler());
  caf::scoped_actor owner{sys};
  auto hdl =
      spawn_reconnecting_client(*rt, fast_config(l.port()), caf::actor{owner});
  BOOST_TEST_REQUIRE(static_cast<bool>(hdl), why(hdl));
  await(owner, *hdl, event::connected);
  caf::anon_send(*hdl, write_atom::value, bytes{"x"});
  BOOST_TEST(ping_pong_x(owner, 3) == "xxx");
}

BOOST_AUTO_TEST_CASE(runtime_shutdown_while_waiting_gives_up) {
  bound_socket reserved{-1};
  caf::scoped_actor owner{sys};
  auto rc = fast_config(reserved.port());
  rc.initial_backoff = 5s;
  rc.max_backoff = 5s;
  auto hdl = spawn_reconnecting_client(*rt, rc, caf::actor{owner});
  BOOST_TEST_REQUIRE(static_cast<bool>(hdl), why(hdl));
  await(owner, *hdl, event::disconnected);
  auto t0 = steady::now();
  rt->shutdown();
  auto ev = await(owner, *hdl, event::gave_up);
  BOOST_TEST((kind(ev.err) == errc::shutdown), describe(ev.err));
  BOOST_TEST((steady::now() - t0 < 4s), "gave up only after the backoff");
  BOOST_TEST(name_of(next_event(owner, *hdl).kind) == "closed");
}

BOOST_AUTO_TEST_CASE(validate_names_the_field) {
  auto check = [](reconnecting_client_config rc, const std::string& field) {
    auto err = rc.validate();
    BOOST_TEST_REQUIRE(static_cast<bool>(err), field << " was accepted");
    BOOST_TEST((kind(err) == errc::invalid_config), describe(err));
    BOOST_TEST(contains(describe(err), field), describe(err));
  };
  auto ok = fast_config(1);
  BOOST_TEST(!ok.validate(), describe(ok.validate()));
  check(reconnecting_client_config{}, "reconnect.client.host");
  auto rc = ok;
  rc.client.port = 0;
  check(rc, "reconnect.client.port");
  rc = ok;
  rc.initial_backoff = 0ms;
  check(rc, "reconnect.initial_backoff");
  rc = ok;
  rc.max_backoff = rc.initial_backoff - 1ms;
  check(rc, "reconnect.max_backoff");
  rc = ok;
  rc.multiplier = 0.5;
  check(rc, "reconnect.multiplier");
  rc = ok;
  rc.jitter = 1.5;
  check(rc, "reconnect.jitter");
  rc = ok;
  rc.jitter = -0.1;
  check(rc, "reconnect.jitter");
  // spawn_reconnecting_client validates too, and wants an owner.
  auto res = spawn_reconnecting_client(*rt, rc, caf::actor{});
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST(contains(describe(res.error()), "reconnect.jitter"),
             describe(res.error()));
  res = spawn_reconnecting_client(*rt, ok, caf::actor{});
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST(contains(describe(res.error()), "owner"), describe(res.error()));
}

BOOST_AUTO_TEST_SUITE_END()
