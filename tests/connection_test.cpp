#include "tcpactor/connection.hpp"

#include <atomic>
#include <mutex>
#include <stdexcept>

#include <caf/sec.hpp>

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;
using namespace tcpactor::test::posix;

namespace {

/// True if the peer saw its socket close: EOF or a reset.
bool saw_close(const pump_result& r) {
  return r.eof || r.error == ECONNRESET || r.error == EPIPE;
}

std::string describe(const pump_result& r) {
  return std::to_string(r.in.size()) + " bytes, eof=" + std::to_string(r.eof) +
         ", error=" + (r.error ? strerror(r.error) : "none") +
         ", timed_out=" + std::to_string(r.timed_out);
}

/// A service that throws on "boom" and echoes everything else.
bytes throw_on_boom(caf::event_based_actor*, const caller&, const bytes& in) {
  if (in.view() == "boom")
    throw std::runtime_error("handler exploded on purpose");
  return in;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(connection_tests, recording_fixture)

BOOST_AUTO_TEST_CASE(peer_fin_ends_with_closed_exactly_once) {
  auto l = listen(recording_handler(sink()));
  auto s = connect_blocking(l.port());
  auto r = pump(s, "hello", 5);
  BOOST_TEST(r.in == "hello", describe(r));
  s.close();
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1), "no exit after FIN");
  auto id = log.by_id.begin()->first;
  auto broken = log.check(id);
  BOOST_TEST(broken.empty(), broken);
  // An orderly FIN is no failure; at most it is named peer_closed.
  auto k = log.error_kind(id);
  BOOST_TEST((k == errc{} || k == errc::peer_closed), log.render(id));
}

BOOST_AUTO_TEST_CASE(local_close_flushes_then_ends_with_closed) {
  // Three ways a service closes its own connection after writing "bye".
  auto hook = [](caf::event_based_actor* self, const caller& c,
                 const bytes& in) -> bytes {
    c.write(bytes{"bye"});
    if (in.view() == "caller")
      c.close();
    else if (in.view() == "transport")
      caf::anon_send(caf::actor_cast<caf::actor>(c.transport()),
                     close_atom::value);
    else
      self->send(caf::actor_cast<caf::actor>(self), close_atom::value);
    return bytes{};
  };
  auto l = listen(recording_handler(sink(), hook));
  for (auto how : {"caller", "transport", "self"}) {
    BOOST_TEST_CONTEXT("close via " << how) {
      auto s = connect_blocking(l.port());
      auto r = pump(s, how, 3);
      BOOST_TEST(r.in == "bye", describe(r));
      // Nothing else arrives: the server closes after the flush.
      auto rest = read_to_end(s);
      BOOST_TEST(rest.eof, describe(rest));
      BOOST_TEST(rest.in.empty(), describe(rest));
    }
  }
  BOOST_TEST_REQUIRE(log.collect_exits(self, 3), "exits: " << log.exits);
  for (auto& [id, evs] : log.by_id) {
    auto broken = log.check(id);
    BOOST_TEST(broken.empty(), broken);
    BOOST_TEST((log.error_kind(id) == errc{}), log.render(id));
  }
}

BOOST_AUTO_TEST_CASE(peer_reset_reports_connection_reset_then_closed) {
  auto l = listen(recording_handler(sink()));
  auto s = connect_blocking(l.port());
  auto r = pump(s, "ping", 4);
  BOOST_TEST(r.in == "ping", describe(r));
  s.reset();
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1), "no exit after RST");
  auto id = log.by_id.begin()->first;
  auto broken = log.check(id);
  BOOST_TEST(broken.empty(), broken);
  BOOST_TEST((log.error_kind(id) == errc::connection_reset), log.render(id));
}

BOOST_AUTO_TEST_CASE(a_monitor_on_the_transport_sees_its_close_reason) {
  // caller::transport() is public: whoever monitors it hears when the
  // socket closed and why, even if the monitor came after the close.
  auto handle = std::make_shared<std::pair<std::mutex, caf::actor>>();
  auto hook = [handle](caf::event_based_actor*, const caller& c,
                       const bytes& in) -> bytes {
    std::lock_guard<std::mutex> guard{handle->first};
    handle->second = caf::actor_cast<caf::actor>(c.transport());
    return in;
  };
  auto l = listen(recording_handler(sink(), hook));
  caf::scoped_actor watcher{sys};
  auto expect_down = [&](const char* when, errc want) {
    watcher->receive(
        [&](caf::down_msg& dm) {
          BOOST_TEST((kind(dm.reason) == want),
                     when << ": " << tcpactor::describe(dm.reason));
        },
        caf::after(10s) >> [&] { BOOST_FAIL(when << ": no down_msg"); });
  };
  auto s = connect_blocking(l.port());
  auto r = pump(s, "watch", 5); // the reply comes after the hook ran
  BOOST_TEST_REQUIRE(r.in == "watch", describe(r));
  caf::actor tr;
  {
    std::lock_guard<std::mutex> guard{handle->first};
    tr = handle->second;
  }
  BOOST_TEST_REQUIRE(static_cast<bool>(tr));
  // Two monitors, then demonitor (detach drops both), then the one that
  // must fire: a stale attachable would show as a second down_msg.
  watcher->monitor(tr);
  watcher->monitor(tr);
  watcher->demonitor(tr);
  watcher->monitor(tr);
  s.reset();
  expect_down("monitor placed while open", errc::connection_reset);
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1), "no exit after RST");
  watcher->monitor(tr);
  expect_down("monitor placed after the close", errc::connection_reset);
  // Nothing else: the demonitored ones stay silent. A stale one would have
  // been told by the same finish() as the first, before the collected exits.
  bool extra = false;
  watcher->receive([&](caf::down_msg&) { extra = true; },
                   caf::after(std::chrono::milliseconds(0)) >> [] {});
  BOOST_TEST(!extra, "a demonitored watcher was told");
}

BOOST_AUTO_TEST_CASE(write_overflow_reports_error_then_closed) {
  listener_config lc;
  lc.connection.write_high_watermark = 64 * 1024;
  lc.connection.write_low_watermark = 16 * 1024;
  lc.connection.write_queue_limit = 1024 * 1024;
  constexpr std::size_t chunk = 1024 * 1024;
  constexpr int chunks = 64;
  auto accepted = std::make_shared<std::atomic<int>>(0);
  auto hook = [accepted](caf::event_based_actor*, const caller& c,
                         const bytes&) -> bytes {
    // 64 MiB for a peer that never reads: far beyond every kernel buffer.
    auto big = bytes::make(chunk, [](char* p) { std::memset(p, 'x', chunk); });
    for (int i = 0; i < chunks && c.write(big); ++i)
      ++*accepted;
    return bytes{};
  };
  auto l = listen(recording_handler(sink(), hook), lc);
  auto s = connect_blocking(l.port());
  BOOST_TEST_REQUIRE(::send(s.fd(), "go", 2, MSG_NOSIGNAL) == 2);
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1), "no exit after overflow");
  auto id = log.by_id.begin()->first;
  auto broken = log.check(id);
  BOOST_TEST(broken.empty(), broken);
  BOOST_TEST((log.error_kind(id) == errc::write_overflow), log.render(id));
  BOOST_TEST(accepted->load() < chunks,
             "writes accepted: " << accepted->load() << " MiB");
  BOOST_TEST_MESSAGE("overflow after " << accepted->load()
                                       << " MiB accepted by write()");
  // The peer finally reads what the kernel held, then sees the close.
  auto rest = read_to_end(s);
  BOOST_TEST(saw_close(rest), describe(rest));
}

BOOST_AUTO_TEST_CASE(reset_while_server_writes_reports_one_error) {
  // The service streams to the peer; the peer resets mid-stream. Whichever
  // path notices first (read or write), the actor sees one error, then
  // closed.
  auto hook = [](caf::event_based_actor*, const caller& c,
                 const bytes&) -> bytes {
    auto big = bytes::make(256 * 1024,
                           [](char* p) { std::memset(p, 'y', 256 * 1024); });
    for (int i = 0; i < 32; ++i)
      c.write(big);
    return bytes{};
  };
  auto l = listen(recording_handler(sink(), hook));
  auto s = connect_blocking(l.port());
  // Read some of the stream so the server is mid-write, then reset.
  auto r = pump(s, "go", 512 * 1024);
  BOOST_TEST(r.in.size() >= 512 * 1024u, describe(r));
  s.reset();
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1), "no exit after RST");
  auto id = log.by_id.begin()->first;
  auto broken = log.check(id);
  BOOST_TEST(broken.empty(), broken);
  auto k = log.error_kind(id);
  BOOST_TEST((k == errc::connection_reset || k == errc::write_failed),
             log.render(id));
}

BOOST_AUTO_TEST_CASE(throwing_handler_closes_only_its_connection) {
  auto l = listen(recording_handler(sink(), throw_on_boom));
  auto a = connect_blocking(l.port());
  auto b = connect_blocking(l.port());
  auto bad = connect_blocking(l.port());
  BOOST_TEST(pump(a, "a1", 2).in == "a1");
  BOOST_TEST(pump(b, "b1", 2).in == "b1");
  BOOST_TEST_REQUIRE(::send(bad.fd(), "boom", 4, MSG_NOSIGNAL) == 4);
  // The thrower's peer sees its socket close...
  auto r = read_to_end(bad);
  BOOST_TEST(saw_close(r), describe(r));
  BOOST_TEST(r.in.empty(), describe(r));
  // ...the listener counts one failure...
  auto st =
      await_stats(l, [](const listener_stats& x) { return x.failed > 0; });
  BOOST_TEST(st.failed == 1u, "failed=" << st.failed);
  // ...and the others keep echoing.
  BOOST_TEST(pump(a, "a2", 2).in == "a2");
  BOOST_TEST(pump(b, "b2", 2).in == "b2");
  st = stats(l);
  BOOST_TEST(st.open == 2u, "open=" << st.open);
  BOOST_TEST(st.failed == 1u, "failed=" << st.failed);
  BOOST_TEST(st.accepted == 3u, "accepted=" << st.accepted);
}

BOOST_AUTO_TEST_CASE(one_of_100_throwing_leaves_99_echoing) {
  constexpr std::size_t n = 100;
  constexpr std::size_t bad = 37;
  auto l = listen(recording_handler(sink(), throw_on_boom));
  std::vector<raw_socket> socks;
  for (std::size_t i = 0; i < n; ++i)
    socks.push_back(connect_blocking(l.port()));
  BOOST_TEST_REQUIRE(::send(socks[bad].fd(), "boom", 4, MSG_NOSIGNAL) == 4);
  auto r = read_to_end(socks[bad]);
  BOOST_TEST(saw_close(r), describe(r));
  // Three rounds on the 99 survivors, each with its own payload.
  std::size_t ok = 0;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < n; ++i) {
      if (i == bad)
        continue;
      auto msg =
          "conn " + std::to_string(i) + " round " + std::to_string(round);
      auto e = pump(socks[i], msg, msg.size());
      BOOST_TEST(e.in == msg, "#" << i << ": " << describe(e));
      ok += e.in == msg ? 1 : 0;
    }
  }
  BOOST_TEST(ok == 3 * (n - 1), "echoes ok: " << ok);
  auto st =
      await_stats(l, [](const listener_stats& x) { return x.failed > 0; });
  BOOST_TEST(st.failed == 1u, "failed=" << st.failed);
  BOOST_TEST(st.open == n - 1, "open=" << st.open);
}

BOOST_AUTO_TEST_CASE(half_closing_peer_gets_every_reply_before_close) {
  // Default limits, and limits so tight that reading pauses all the time.
  listener_config tight;
  tight.connection.read_chunk = 4096;
  tight.connection.max_unprocessed_bytes = 8192;
  tight.connection.max_unprocessed_chunks = 2;
  tight.connection.write_high_watermark = 8192;
  tight.connection.write_low_watermark = 2048;
  tight.connection.write_queue_limit = 64 * 1024;
  auto loose = listen(echo_handler());
  auto strict = listen(echo_handler(), tight);
  for (auto* l : {&loose, &strict}) {
    for (std::size_t size : {1u, 1000u, 64u * 1024, 4u * 1024 * 1024}) {
      BOOST_TEST_CONTEXT("port " << l->port() << ", payload " << size
                                 << " bytes") {
        auto s = connect_blocking(l->port());
        auto out = pattern(size, size);
        // Sends everything, then FIN, while reading until the server's EOF.
        auto r = pump(s, out, static_cast<std::size_t>(-1), true);
        BOOST_TEST(r.eof, describe(r));
        BOOST_TEST(r.in.size() == out.size(), describe(r));
        BOOST_TEST((r.in == out), "echo differs from payload");
      }
    }
  }
  BOOST_TEST(wait_until([&] { return rt->open_connections() == 0; }),
             "open: " << rt->open_connections());
}

BOOST_AUTO_TEST_CASE(racing_close_paths_still_end_with_one_closed) {
  // The service closes some connections itself while their peers close or
  // reset at the same moment: every actor still sees `closed` exactly once.
  constexpr std::size_t n = 300;
  auto hook = [](caf::event_based_actor*, const caller& c,
                 const bytes& in) -> bytes {
    auto i = std::stoul(in.to_string());
    if (i % 3 == 0)
      c.close();
    else if (i % 3 == 1)
      caf::anon_send(caf::actor_cast<caf::actor>(c.transport()),
                     close_atom::value);
    return in;
  };
  auto l = listen(recording_handler(sink(), hook));
  std::vector<echo_job> jobs(n);
  for (std::size_t i = 0; i < n; ++i)
    jobs[i].sock = start_connect(l.port());
  // Send without waiting for the echo, then close at once.
  std::size_t sent = 0;
  for (std::size_t i = 0; i < n; ++i) {
    pollfd p{jobs[i].sock.fd(), POLLOUT, 0};
    ::poll(&p, 1, 5000);
    auto msg = std::to_string(i);
    if (::send(jobs[i].sock.fd(), msg.data(), msg.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(msg.size()))
      ++sent;
  }
  BOOST_TEST(sent == n, "sent: " << sent);
  for (std::size_t i = 0; i < n; ++i)
    if (i % 2 == 0)
      jobs[i].sock.reset();
    else
      jobs[i].sock.close();
  BOOST_TEST_REQUIRE(log.collect_exits(self, n), "exits: " << log.exits);
  std::map<std::string, std::size_t> endings;
  for (auto& [id, evs] : log.by_id) {
    auto broken = log.check(id);
    BOOST_TEST(broken.empty(), broken);
    auto k = log.error_kind(id);
    ++endings[k == errc{} ? "none" : to_string(k)];
  }
  std::string summary;
  for (auto& [k, count] : endings)
    summary += " " + k + "=" + std::to_string(count);
  BOOST_TEST_MESSAGE(n << " racing closes, errors seen:" << summary);
  BOOST_TEST(wait_until([&] { return rt->open_connections() == 0; }),
             "open: " << rt->open_connections());
}

BOOST_AUTO_TEST_CASE(connection_ids_are_unique) {
  constexpr std::size_t per_listener = 250;
  auto l1 = listen(recording_handler(sink()));
  auto l2 = listen(recording_handler(sink()));
  std::vector<echo_job> jobs(per_listener);
  std::vector<echo_job> jobs2(per_listener);
  for (auto* js : {&jobs, &jobs2})
    for (auto& j : *js)
      j.out = "id?";
  auto err = run_echo_jobs(jobs, l1.port());
  BOOST_TEST(err.empty(), err);
  err = run_echo_jobs(jobs2, l2.port());
  BOOST_TEST(err.empty(), err);
  jobs.clear();
  jobs2.clear();
  BOOST_TEST_REQUIRE(log.collect_exits(self, 2 * per_listener),
                     "exits: " << log.exits);
  std::set<connection_id> ids;
  for (auto& [id, evs] : log.by_id) {
    BOOST_TEST(id != 0u);
    ids.insert(id);
    auto broken = log.check(id);
    BOOST_TEST(broken.empty(), broken);
  }
  BOOST_TEST(ids.size() == 2 * per_listener,
             "distinct ids: " << ids.size() << " of " << 2 * per_listener);
}

BOOST_AUTO_TEST_CASE(actor_that_quits_closes_only_its_connection) {
  // quit() with an error counts as a failure; a normal quit flushes and
  // closes like close().
  auto hook = [](caf::event_based_actor* self, const caller& c,
                 const bytes& in) -> bytes {
    if (in.view() == "die") {
      self->quit(caf::make_error(caf::sec::runtime_error));
    } else if (in.view() == "stop") {
      c.write(bytes{"bye"});
      self->quit();
    } else {
      return in;
    }
    return bytes{};
  };
  auto l = listen(recording_handler(sink(), hook));
  auto keep = connect_blocking(l.port());
  auto die = connect_blocking(l.port());
  auto stop = connect_blocking(l.port());
  BOOST_TEST(pump(keep, "k1", 2).in == "k1");
  BOOST_TEST_REQUIRE(::send(die.fd(), "die", 3, MSG_NOSIGNAL) == 3);
  auto r = read_to_end(die);
  BOOST_TEST(saw_close(r), describe(r));
  auto r2 = pump(stop, "stop", static_cast<std::size_t>(-1));
  BOOST_TEST(r2.eof, describe(r2));
  BOOST_TEST(r2.in == "bye", describe(r2));
  auto st =
      await_stats(l, [](const listener_stats& x) { return x.failed > 0; });
  BOOST_TEST(st.failed == 1u, "failed=" << st.failed);
  BOOST_TEST(pump(keep, "k2", 2).in == "k2");
  st = await_stats(l, [](const listener_stats& x) { return x.open == 1; });
  BOOST_TEST(st.open == 1u, "open=" << st.open);
}

BOOST_AUTO_TEST_CASE(caller_copy_outliving_its_connection_is_harmless) {
  struct shared {
    std::mutex mtx;
    std::vector<caller> callers;
  };
  auto st = std::make_shared<shared>();
  auto hook = [st](caf::event_based_actor*, const caller& c,
                   const bytes& in) -> bytes {
    std::lock_guard<std::mutex> guard{st->mtx};
    st->callers.push_back(c);
    return in;
  };
  auto l = listen(recording_handler(sink(), hook));
  uint16_t client_port = 0;
  {
    auto s = connect_blocking(l.port());
    client_port = s.local_port();
    BOOST_TEST(pump(s, "x", 1).in == "x");
  }
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1), "no exit");
  BOOST_TEST_REQUIRE(wait_until([&] { return rt->open_connections() == 0; }));
  caller c;
  {
    std::lock_guard<std::mutex> guard{st->mtx};
    BOOST_TEST_REQUIRE(st->callers.size() == 1u);
    c = st->callers.front();
  }
  BOOST_TEST(!c.write(bytes{"late"}), "write after close must fail");
  c.close(); // no effect, no crash
  BOOST_TEST(c.id() == log.by_id.begin()->first);
  BOOST_TEST(c.remote_port() == client_port);
  BOOST_TEST(c.local_port() == l.port());
  // A new connection is not confused with the old one (fd reuse).
  auto s2 = connect_blocking(l.port());
  BOOST_TEST(pump(s2, "fresh", 5).in == "fresh");
  BOOST_TEST(!c.write(bytes{"late"}));
  auto r = pump(s2, "again", 5, false, 2s);
  BOOST_TEST(r.in == "again", describe(r));
}

/// Answers "bad" with an error (not bytes), echoes the rest, and reports
/// every event to `sink` as recording_handler does.
connect_handler error_on_bad(caf::actor sink) {
  return [sink](caf::event_based_actor* self,
                const caller& conn) -> caf::expected<service> {
    auto report = event_reporter(self, sink, conn.id());
    report("open");
    return service{
        [report](const bytes& in) -> caf::result<bytes> {
          report("bytes");
          if (in.view() == "bad")
            return caf::make_error(caf::sec::invalid_argument, "bad input");
          return in;
        },
        [report](error_atom, const caf::error& err) { report("error", err); },
        [report](closed_atom) { report("closed"); },
    };
  };
}

BOOST_AUTO_TEST_CASE(handler_error_closes_by_default) {
  auto l = listen(error_on_bad(sink()));
  auto s = connect_blocking(l.port());
  BOOST_TEST(pump(s, "ok", 2).in == "ok");
  auto r = pump(s, "bad", 1);
  BOOST_TEST(saw_close(r), describe(r));
  auto id = log.await(self, "closed");
  BOOST_TEST(log.render(id) == "open bytes bytes error(handler_failed) closed");
}

BOOST_AUTO_TEST_CASE(handler_error_is_only_reported_when_asked) {
  // Ballerina's onBytes returning an error: reported, the connection stays.
  listener_config lc;
  lc.connection.close_on_handler_error = false;
  auto l = listen(error_on_bad(sink()), lc);
  auto s = connect_blocking(l.port());
  BOOST_TEST(pump(s, "ok", 2).in == "ok");
  BOOST_TEST_REQUIRE(::send(s.fd(), "bad", 3, MSG_NOSIGNAL) == 3);
  auto id = log.await(self, "error");
  BOOST_TEST_REQUIRE(id != 0u);
  BOOST_TEST(log.error_kind(id) == errc::handler_failed, log.render(id));
  BOOST_TEST(pump(s, "still here", 10).in == "still here");
  s.close();
  BOOST_TEST(log.await(self, "closed") == id);
  BOOST_TEST(log.render(id) ==
             "open bytes bytes error(handler_failed) bytes closed");
}

BOOST_AUTO_TEST_SUITE_END()
