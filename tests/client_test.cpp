#include "tcpactor/client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <vector>

#include <caf/after.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;

namespace {

/// Byte `i` of the large payload: a pattern that catches lost or reordered
/// chunks.
char payload_byte(std::size_t i) {
  return static_cast<char>(i % 251);
}

/// A connect handler that writes `payload` at once and then closes.
connect_handler write_and_close(bytes payload) {
  return [payload](caf::event_based_actor*,
                   const caller& conn) -> caf::expected<service> {
    conn.write(payload);
    conn.close();
    return echo_service();
  };
}

/// Connects with `cc` (host defaults to 127.0.0.1) and returns the error;
/// fails the test if the connect succeeds.
caf::error connect_error(runtime& rt, client_config cc) {
  if (cc.host.empty())
    cc.host = "127.0.0.1";
  auto res = blocking_client::connect(rt, cc);
  BOOST_TEST_REQUIRE(!res, "connect to " << cc.host << ":" << cc.port
                                         << " unexpectedly succeeded");
  return res.error();
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(client_tests, runtime_fixture)

BOOST_AUTO_TEST_CASE(blocking_client_echoes) {
  auto l = listen(echo_handler());
  auto c = connect(l.port());
  auto err = c.write_bytes(bytes{"Hello Ballerina"});
  BOOST_TEST(!err, describe(err));
  BOOST_TEST(read_exactly(c, 15) == "Hello Ballerina");
  // A second round trip on the same connection.
  err = c.write_bytes(bytes{"again"});
  BOOST_TEST(!err, describe(err));
  BOOST_TEST(read_exactly(c, 5) == "again");
  err = c.close();
  BOOST_TEST(!err, describe(err));
}

BOOST_AUTO_TEST_CASE(client_actor_echoes_and_sees_closed_last) {
  auto l = listen(echo_handler());
  caf::scoped_actor owner{sys};
  client_config cc;
  cc.host = "127.0.0.1";
  cc.port = l.port();
  auto client = spawn_client(*rt, cc, caf::actor{owner});
  BOOST_TEST_REQUIRE(static_cast<bool>(client), why(client));
  auto client_ptr = caf::actor_cast<caf::strong_actor_ptr>(*client);
  owner->receive(
      [&](connected_atom) {
        BOOST_TEST((owner->current_sender() == client_ptr),
                   "connected_atom must come from the client handle");
      },
      caf::after(10s) >> [] { BOOST_FAIL("no connected_atom"); });
  // A write request is answered once the bytes reached the kernel.
  owner->request(*client, 10s, write_atom::value, bytes{"ping"})
      .receive([] {},
               [](caf::error& err) {
                 BOOST_FAIL("write not acknowledged: " << describe(err));
               });
  std::string echoed;
  while (echoed.size() < 4) {
    owner->receive(
        [&](bytes& chunk) -> bytes {
          BOOST_TEST((owner->current_sender() == client_ptr));
          echoed += chunk.to_string();
          return {}; // write nothing back
        },
        caf::after(10s) >> [] { BOOST_FAIL("no echo"); });
  }
  BOOST_TEST(echoed == "ping");
  caf::anon_send(*client, close_atom::value);
  bool closed = false;
  while (!closed) {
    owner->receive(
        [&](bytes&) -> bytes {
          BOOST_FAIL("unexpected bytes after the echo");
          return {};
        },
        [&](error_atom, caf::error& err) {
          BOOST_FAIL("an orderly close reported " << describe(err));
        },
        [&](closed_atom) { closed = true; },
        caf::after(10s) >> [] { BOOST_FAIL("no closed_atom"); });
  }
  // `closed` is the last message: nothing may follow it.
  owner->receive(
      [&](bytes&) -> bytes {
        BOOST_FAIL("bytes after closed_atom");
        return {};
      },
      [&](error_atom, caf::error& err) {
        BOOST_FAIL("error after closed_atom: " << describe(err));
      },
      [&](closed_atom) { BOOST_FAIL("second closed_atom"); },
      caf::after(100ms) >> [] {});
}

BOOST_AUTO_TEST_CASE(client_actor_reply_is_written_back) {
  // The owner's reply to a chunk goes back to the peer: owner and listener
  // play ping-pong through two echoes.
  auto l = listen(echo_handler());
  caf::scoped_actor owner{sys};
  client_config cc;
  cc.host = "127.0.0.1";
  cc.port = l.port();
  auto client = spawn_client(*rt, cc, caf::actor{owner});
  BOOST_TEST_REQUIRE(static_cast<bool>(client), why(client));
  owner->receive([](connected_atom) {},
                 caf::after(10s) >> [] { BOOST_FAIL("no connected_atom"); });
  caf::anon_send(*client, write_atom::value, bytes{"x"});
  BOOST_TEST(ping_pong_x(owner, 3) == "xxx");
  caf::anon_send(*client, close_atom::value);
  owner->receive([](closed_atom) {},
                 caf::after(10s) >> [] { BOOST_FAIL("no closed_atom"); });
}

BOOST_AUTO_TEST_CASE(foreign_local_address_fails_with_connect_failed) {
  // 10.255.255.1 is on no interface of this machine: bind() fails before any
  // packet leaves, so the target may safely be loopback.
  auto l = listen(echo_handler());
  client_config cc;
  cc.port = l.port();
  cc.local_host = "10.255.255.1";
  auto err = connect_error(*rt, cc);
  BOOST_TEST((kind(err) == errc::connect_failed), describe(err));
  BOOST_TEST(contains(describe(err), "10.255.255.1"), describe(err));
}

BOOST_AUTO_TEST_CASE(non_ip_local_host_fails_with_invalid_config) {
  auto l = listen(echo_handler());
  client_config cc;
  cc.port = l.port();
  cc.local_host = "not-an-ip";
  auto err = connect_error(*rt, cc);
  BOOST_TEST((kind(err) == errc::invalid_config), describe(err));
  BOOST_TEST(contains(describe(err), "client.local_host"), describe(err));
}

BOOST_AUTO_TEST_CASE(loopback_local_host_connects) {
  // The positive twin of the two tests above: binding a local address that
  // exists works, and the listener sees it as the remote host.
  caf::scoped_actor probe{sys};
  auto l = listen(
      [hdl = caf::actor{probe}](caf::event_based_actor*,
                                const caller& conn) -> caf::expected<service> {
        caf::anon_send(hdl, conn.remote_host());
        return echo_service();
      });
  client_config cc;
  cc.local_host = "127.0.0.1";
  auto c = connect(l.port(), cc);
  probe->receive(
      [](const std::string& host) { BOOST_TEST(host == "127.0.0.1"); },
      caf::after(10s) >> [] { BOOST_FAIL("connect handler did not run"); });
  BOOST_TEST(!c.write_bytes(bytes{"ok"}));
  BOOST_TEST(read_exactly(c, 2) == "ok");
}

BOOST_AUTO_TEST_CASE(closed_port_fails_with_connect_failed) {
  bound_socket reserved{-1}; // bound, not listening: the kernel refuses
  client_config cc;
  cc.port = reserved.port();
  auto err = connect_error(*rt, cc);
  BOOST_TEST((kind(err) == errc::connect_failed), describe(err));
  BOOST_TEST(contains(describe(err), std::to_string(reserved.port())),
             describe(err));
}

BOOST_AUTO_TEST_CASE(unknown_host_fails_with_resolve_failed) {
  client_config cc;
  cc.host = "no-such-host.invalid"; // RFC 6761: never resolves
  cc.port = 80;
  auto err = connect_error(*rt, cc);
  BOOST_TEST((kind(err) == errc::resolve_failed), describe(err));
  BOOST_TEST(contains(describe(err), "no-such-host.invalid"), describe(err));
}

BOOST_AUTO_TEST_CASE(full_backlog_fails_with_connect_timeout) {
  // A listening socket that never accepts, with the shortest accept queue:
  // once the queue is full, Linux drops further SYNs, so a connect hangs
  // until connect_timeout.
  bound_socket stuck{0};
  client_config cc;
  cc.port = stuck.port();
  cc.connect_timeout = 300ms;
  std::vector<blocking_client> queued; // fill the queue, keep them open
  caf::error err;
  for (int attempt = 0; attempt < 16 && !err; ++attempt) {
    cc.host = "127.0.0.1";
    auto res = blocking_client::connect(*rt, cc);
    if (res)
      queued.emplace_back(std::move(*res));
    else
      err = res.error();
  }
  BOOST_TEST_REQUIRE(static_cast<bool>(err),
                     "16 connects to a full backlog all succeeded");
  BOOST_TEST((kind(err) == errc::connect_timeout), describe(err));
  BOOST_TEST(contains(describe(err), "300ms"), describe(err));
}

BOOST_AUTO_TEST_CASE(read_timeout_keeps_connection_usable) {
  auto l = listen(echo_handler());
  client_config cc;
  cc.read_timeout = 100ms;
  auto c = connect(l.port(), cc);
  // Nothing was sent, so nothing comes back: the configured timeout...
  auto res = c.read_bytes();
  BOOST_TEST_REQUIRE(!res, "read returned data nobody sent");
  BOOST_TEST((kind(res.error()) == errc::read_timeout), describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), "timed out"),
             describe(res.error()));
  // ...and an explicit one.
  res = c.read_bytes(50ms);
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST((kind(res.error()) == errc::read_timeout), describe(res.error()));
  // The connection survived both.
  auto err = c.write_bytes(bytes{"still here"});
  BOOST_TEST(!err, describe(err));
  BOOST_TEST(read_exactly(c, 10) == "still here");
}

BOOST_AUTO_TEST_CASE(reads_eight_megabytes_from_server) {
  constexpr std::size_t n = 8'000'001;
  auto payload = bytes::make(n, [](char* buf) {
    for (std::size_t i = 0; i < n; ++i)
      buf[i] = payload_byte(i);
  });
  auto l = listen(write_and_close(payload));
  auto c = connect(l.port());
  auto got = read_exactly(c, n);
  BOOST_TEST_REQUIRE(got.size() == n);
  BOOST_TEST(got.back() == payload_byte(n - 1));
  BOOST_TEST((got == payload.view()), "payload corrupted");
  // Everything arrived, then the close.
  auto err = read_until_error(c);
  BOOST_TEST((kind(err) == errc::peer_closed), describe(err));
}

BOOST_AUTO_TEST_CASE(server_writes_eight_megabytes_on_first_bytes) {
  // The other way to push a big reply: caller.write from the bytes handler.
  constexpr std::size_t n = 8'000'001;
  auto l = listen([](caf::event_based_actor*,
                     const caller& conn) -> caf::expected<service> {
    return service{
        [conn](const bytes&) {
          conn.write(bytes::make(n, [](char* buf) {
            for (std::size_t i = 0; i < n; ++i)
              buf[i] = payload_byte(i);
          }));
          return bytes{};
        },
        [](error_atom, const caf::error&) {},
        [](closed_atom) {},
    };
  });
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"go"}));
  auto got = read_exactly(c, n);
  BOOST_TEST(got.size() == n);
  BOOST_TEST(got.back() == payload_byte(n - 1));
  BOOST_TEST(got[n / 2] == payload_byte(n / 2));
}

BOOST_AUTO_TEST_CASE(data_before_peer_close_comes_first) {
  caf::scoped_actor observer{sys};
  auto l =
      listen(write_and_close(bytes{"last words"}), {}, caf::actor{observer});
  auto c = connect(l.port());
  // Wait until the server side has closed, so the FIN is already on its way
  // before the first read.
  BOOST_TEST_REQUIRE(
      static_cast<bool>(await_event(observer, connection_event::closed)));
  BOOST_TEST(read_exactly(c, 10) == "last words");
  auto res = c.read_bytes(10s);
  BOOST_TEST_REQUIRE(!res, "data after the peer closed");
  BOOST_TEST((kind(res.error()) == errc::peer_closed), describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), "closed by peer"),
             describe(res.error()));
  // Reading again repeats the verdict instead of hanging.
  res = c.read_bytes(10s);
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST((kind(res.error()) == errc::peer_closed), describe(res.error()));
}

BOOST_AUTO_TEST_CASE(close_is_idempotent_and_use_after_close_fails) {
  auto l = listen(echo_handler());
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"hi"}));
  BOOST_TEST(read_exactly(c, 2) == "hi");
  auto err = c.close();
  BOOST_TEST(!err, describe(err));
  err = c.close();
  BOOST_TEST(!err, "second close: " << describe(err));
  err = c.write_bytes(bytes{"too late"});
  BOOST_TEST((kind(err) == errc::closed), describe(err));
  BOOST_TEST(contains(describe(err), "socket connection already closed"),
             describe(err));
  auto res = c.read_bytes(1s);
  BOOST_TEST_REQUIRE(!res, "read after close returned data");
  BOOST_TEST((kind(res.error()) == errc::closed), describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), "already closed"),
             describe(res.error()));
}

BOOST_AUTO_TEST_CASE(close_after_peer_closed_is_quiet) {
  auto l = listen(write_and_close(bytes{}));
  auto c = connect(l.port());
  auto err = read_until_error(c);
  BOOST_TEST((kind(err) == errc::peer_closed), describe(err));
  err = c.close();
  BOOST_TEST(!err, describe(err));
  err = c.write_bytes(bytes{"x"});
  BOOST_TEST((kind(err) == errc::closed), describe(err));
}

BOOST_AUTO_TEST_CASE(moved_from_client_reports_closed) {
  auto l = listen(echo_handler());
  auto c = connect(l.port());
  auto d = std::move(c);
  BOOST_TEST(!d.write_bytes(bytes{"moved"}));
  BOOST_TEST(read_exactly(d, 5) == "moved");
  // NOLINTNEXTLINE(bugprone-use-after-move): the moved-from state is defined.
  auto err = c.write_bytes(bytes{"x"});
  BOOST_TEST((kind(err) == errc::closed), describe(err));
  BOOST_TEST(!c.close());
}

BOOST_AUTO_TEST_CASE(write_after_server_closed_eventually_fails) {
  caf::scoped_actor observer{sys};
  auto l = listen(write_and_close(bytes{}), {}, caf::actor{observer});
  client_config cc;
  cc.write_timeout = 5s; // a hang would show up as write_timeout
  auto c = connect(l.port(), cc);
  BOOST_TEST_REQUIRE(
      static_cast<bool>(await_event(observer, connection_event::closed)));
  // The first writes may still reach the kernel; the RST or FIN then turns
  // later ones into errors.
  caf::error err;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  int writes = 0;
  while (!err && std::chrono::steady_clock::now() < deadline) {
    err = c.write_bytes(bytes{"anyone there?"});
    ++writes;
  }
  BOOST_TEST_REQUIRE(static_cast<bool>(err),
                     "still writing after " << writes << " writes");
  auto k = kind(err);
  BOOST_TEST((k == errc::closed || k == errc::peer_closed ||
              k == errc::connection_reset || k == errc::write_failed),
             describe(err));
  // Reading now reports the close too.
  auto res = c.read_bytes(10s);
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST((kind(res.error()) != errc::read_timeout), describe(res.error()));
}

BOOST_AUTO_TEST_CASE(spawn_client_checks_config_and_owner) {
  caf::scoped_actor owner{sys};
  client_config cc; // no host
  auto res = spawn_client(*rt, cc, caf::actor{owner});
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST((kind(res.error()) == errc::invalid_config),
             describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), "client.host"),
             describe(res.error()));
  cc.host = "127.0.0.1";
  cc.port = 1;
  res = spawn_client(*rt, cc, caf::actor{});
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST((kind(res.error()) == errc::invalid_config),
             describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), "owner"), describe(res.error()));
}

BOOST_AUTO_TEST_SUITE_END()
