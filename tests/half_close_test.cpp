// Half-close: the peer's FIN as its own event while we keep writing, and
// ending our own write side while we keep reading.

#include <mutex>
#include <set>
#include <vector>

#include <sys/socket.h>

#include "fixtures.hpp"
#include "tls_certs.hpp"

using namespace tcpactor;
using namespace tcpactor::test;
using namespace tcpactor::test::posix;

namespace {

/// Echoes; on the peer's end (an empty chunk) answers "done" and closes.
connect_handler answer_at_end(caf::actor sink) {
  return recording_handler(
      std::move(sink),
      [](caf::event_based_actor*, const caller& conn, const bytes& in) {
        if (!in.empty())
          return in;
        // write() queues now; a reply would race the close.
        conn.write(bytes{"done"});
        conn.close();
        return bytes{};
      });
}

/// The library's echo, given its connection.
connect_handler echo_handler_with_caller() {
  return [](caf::event_based_actor*,
            const caller& conn) -> caf::expected<service> {
    return echo_service(conn);
  };
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(half_close_tests, recording_fixture)

BOOST_AUTO_TEST_CASE(peer_fin_arrives_as_an_empty_chunk_and_we_still_write) {
  listener_config lc;
  lc.connection.half_close = true;
  auto l = listen(answer_at_end(sink()), lc);
  auto s = connect_blocking(l.port());
  // Sends, then FIN: everything after the echo comes from the half-closed
  // state.
  auto res = pump(s, "abc", 7, true);
  BOOST_TEST(res.in == "abcdone");
  auto rest = read_to_end(s);
  BOOST_TEST((rest.eof && rest.in.empty()));
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1));
  auto id = log.by_id.begin()->first;
  BOOST_TEST(log.check(id).empty(), log.render(id));
  BOOST_TEST(log.render(id) == "open bytes bytes closed exit");
}

BOOST_AUTO_TEST_CASE(without_half_close_fin_closes) {
  auto l = listen(answer_at_end(sink()));
  auto s = connect_blocking(l.port());
  auto res = pump(s, "abc", 7, true);
  BOOST_TEST(res.in == "abc"); // no "done": the service never saw the end
  BOOST_TEST(res.eof);
}

BOOST_AUTO_TEST_CASE(shutdown_write_sends_fin_and_keeps_reading) {
  auto hook = [](caf::event_based_actor*, const caller& conn, const bytes& in) {
    if (in.view() == "first") {
      conn.write(bytes{"reply"});
      conn.shutdown_write();
      // Refused: the peer must see "reply" and then the end, nothing else.
      conn.write(bytes{"late"});
    }
    return bytes{};
  };
  auto l = listen(recording_handler(sink(), hook));
  auto s = connect_blocking(l.port());
  auto res = pump(s, "first", static_cast<std::size_t>(-1));
  BOOST_TEST(res.in == "reply");
  BOOST_TEST(res.eof); // our FIN, while the connection is still open
  // The server still reads: the chunk arrives, then our close ends it.
  BOOST_TEST_REQUIRE(::send(s.fd(), "more", 4, MSG_NOSIGNAL) == 4);
  auto id = log.await(self, "bytes");
  BOOST_TEST_REQUIRE(id != 0u);
  id = log.await(self, "bytes");
  BOOST_TEST_REQUIRE(id != 0u, "the second chunk never arrived");
  ::shutdown(s.fd(), SHUT_WR);
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1));
  BOOST_TEST(log.render(id) == "open bytes bytes closed exit");
}

BOOST_AUTO_TEST_CASE(blocking_client_half_close) {
  // The server answers the client's end with "done" and closes; the client
  // ends its side first and still reads.
  listener_config lc;
  lc.connection.half_close = true;
  auto l = listen(answer_at_end(sink()), lc);
  auto c = connect(l.port());
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"xyz"}));
  BOOST_TEST(read_exactly(c, 3) == "xyz");
  BOOST_TEST(!c.shutdown_write());
  BOOST_TEST(read_exactly(c, 4) == "done");
  auto err = read_until_error(c);
  BOOST_TEST(kind(err) == errc::peer_closed, describe(err));
}

BOOST_AUTO_TEST_CASE(client_sees_server_end_and_keeps_writing) {
  auto hook = [](caf::event_based_actor*, const caller& conn, const bytes& in) {
    if (in.view() == "hello") {
      conn.write(bytes{"bye"});
      conn.shutdown_write();
    }
    return bytes{};
  };
  auto l = listen(recording_handler(sink(), hook));
  client_config cc;
  cc.connection.half_close = true;
  auto c = connect(l.port(), cc);
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"hello"}));
  BOOST_TEST(read_exactly(c, 3) == "bye");
  auto end = c.read_bytes(10s);
  BOOST_TEST_REQUIRE(!end);
  BOOST_TEST(kind(end.error()) == errc::peer_closed);
  // Half-closed by the server, still writable by us.
  BOOST_TEST(!c.write_bytes(bytes{"after"}));
  BOOST_TEST(log.await(self, "bytes") != 0u);
  BOOST_TEST(log.await(self, "bytes") != 0u, "'after' never arrived");
  BOOST_TEST(!c.close());
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1));
}

BOOST_AUTO_TEST_CASE(half_close_over_tls) {
  auto& certs = shared_certs();
  listener_config lc;
  lc.connection.half_close = true;
  lc.tls.enabled = true;
  lc.tls.cert_file = certs.server_cert;
  lc.tls.key_file = certs.server_key;
  auto l = listen(answer_at_end(sink()), lc);
  client_config cc;
  cc.tls.enabled = true;
  cc.tls.ca_file = certs.ca;
  auto c = connect(l.port(), cc);
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"sec"}));
  BOOST_TEST(read_exactly(c, 3) == "sec");
  // close_notify, then FIN: the server sees a clean end, not a truncation.
  BOOST_TEST(!c.shutdown_write());
  BOOST_TEST(read_exactly(c, 4) == "done");
  auto err = read_until_error(c);
  BOOST_TEST(kind(err) == errc::peer_closed, describe(err));
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1));
  auto id = log.by_id.begin()->first;
  BOOST_TEST(log.render(id) == "open bytes bytes closed exit");
}

BOOST_AUTO_TEST_CASE(echo_service_closes_once_a_half_closing_peer_ended) {
  listener_config lc;
  lc.connection.half_close = true;
  auto l = listen(echo_handler_with_caller(), lc);
  auto s = connect_blocking(l.port());
  auto res = pump(s, "abc", 3, true);
  BOOST_TEST(res.in == "abc");
  // Without the close the half-closed connection would stay open.
  auto rest = read_to_end(s, 5s);
  BOOST_TEST(rest.eof);
  BOOST_TEST(!rest.timed_out);
}

// The shared behavior is what keeps an idle echo connection 152 bytes
// smaller; a half-closing one needs its own, which captures its caller.
BOOST_AUTO_TEST_CASE(echo_service_shares_its_behavior_unless_half_closing) {
  for (bool half : {false, true}) {
    std::mutex mtx;
    std::set<const void*> impls;
    listener_config lc;
    lc.connection.half_close = half;
    auto l = listen(
        [&](caf::event_based_actor*,
            const caller& conn) -> caf::expected<service> {
          auto svc = echo_service(conn);
          std::lock_guard<std::mutex> guard{mtx};
          impls.insert(svc.unbox().as_behavior_impl().get());
          return svc;
        },
        lc);
    std::vector<raw_socket> socks;
    for (int i = 0; i < 3; ++i)
      socks.push_back(connect_blocking(l.port()));
    // An echo means that connection's handler has run.
    for (auto& s : socks)
      BOOST_TEST_REQUIRE(pump(s, "x", 1).in == "x");
    std::lock_guard<std::mutex> guard{mtx};
    BOOST_TEST(impls.size() == (half ? 3u : 1u), "half_close=" << half);
  }
}

BOOST_AUTO_TEST_SUITE_END()
