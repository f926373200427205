// Framing over real sockets: a listener or client with a codec delivers one
// message per whole frame, whatever the reads, and frames what it writes.
// The codecs alone are tested in frame_codec_test.cpp.

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "fixtures.hpp"
#include "tls_certs.hpp"

using namespace tcpactor;
using namespace tcpactor::test;
using namespace tcpactor::test::posix;

namespace {

framing_config spec(const std::string& text) {
  auto res = framing_config::parse(text);
  BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
  return *res;
}

std::string be32(std::size_t n) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i)
    out[static_cast<std::size_t>(i)] =
        static_cast<char>((n >> (8 * (3 - i))) & 0xff);
  return out;
}

std::string frame4(const std::string& payload) {
  return be32(payload.size()) + payload;
}

/// Every frame a recording service saw, in order, shared with the test.
struct seen_frames {
  std::mutex mtx;
  std::vector<std::string> frames;

  chunk_hook echo_and_keep() {
    return
        [this](caf::event_based_actor*, const caller& conn, const bytes& in) {
          {
            std::lock_guard<std::mutex> guard{mtx};
            frames.push_back(in.to_string());
          }
          // An empty reply writes nothing; an empty frame goes out by write.
          if (in.empty())
            conn.write(in);
          return in;
        };
  }

  std::vector<std::string> get() {
    std::lock_guard<std::mutex> guard{mtx};
    return frames;
  }
};

listener_config with_framing(const std::string& text) {
  listener_config lc;
  lc.connection.framing = spec(text);
  return lc;
}

/// Sends `data` one byte per send() with Nagle off, so the server sees
/// it in many small reads.
void send_bytewise(const raw_socket& s, const std::string& data) {
  int one = 1;
  ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  for (char c : data)
    BOOST_TEST_REQUIRE(::send(s.fd(), &c, 1, MSG_NOSIGNAL) == 1);
}

/// The library's echo, given its connection: it echoes empty frames too.
connect_handler framed_echo() {
  return [](caf::event_based_actor*,
            const caller& conn) -> caf::expected<service> {
    return echo_service(conn);
  };
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(framing_tests, recording_fixture)

BOOST_AUTO_TEST_CASE(one_byte_writes_still_make_whole_frames) {
  seen_frames seen;
  auto l = listen(recording_handler(sink(), seen.echo_and_keep()),
                  with_framing("length:4"));
  auto s = connect_blocking(l.port());
  std::string wire =
      frame4("hello") + frame4("") + frame4(std::string(300, 'x'));
  send_bytewise(s, wire);
  // The echo is framed again on the way out: the same bytes come back.
  auto res = pump(s, {}, wire.size());
  BOOST_TEST(res.in == wire);
  auto frames = seen.get();
  BOOST_TEST_REQUIRE(frames.size() == 3u);
  BOOST_TEST(frames[0] == "hello");
  BOOST_TEST(frames[1] == "");
  BOOST_TEST(frames[2] == std::string(300, 'x'));
}

BOOST_AUTO_TEST_CASE(many_frames_in_one_write_arrive_one_by_one_in_order) {
  seen_frames seen;
  auto l = listen(recording_handler(sink(), seen.echo_and_keep()),
                  with_framing("length:4"));
  auto s = connect_blocking(l.port());
  std::string wire;
  std::vector<std::string> want;
  for (int i = 0; i < 500; ++i) {
    want.push_back("frame " + std::to_string(i));
    wire += frame4(want.back());
  }
  auto res = pump(s, wire, wire.size());
  BOOST_TEST(res.in == wire);
  BOOST_TEST(seen.get() == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(pausing_for_unanswered_frames_loses_none) {
  // Four unanswered frames pause reading: the rest of a read waits in the
  // codec and goes up first when the actor catches up.
  seen_frames seen;
  auto lc = with_framing("length:4");
  lc.connection.max_unprocessed_chunks = 4;
  auto l = listen(recording_handler(sink(), seen.echo_and_keep()), lc);
  auto s = connect_blocking(l.port());
  std::string wire;
  for (int i = 0; i < 3000; ++i)
    wire += frame4(std::to_string(i));
  auto res = pump(s, wire, wire.size());
  BOOST_TEST(res.in.size() == wire.size());
  BOOST_TEST((res.in == wire));
  BOOST_TEST(seen.get().size() == 3000u);
}

BOOST_AUTO_TEST_CASE(oversized_frame_closes_after_earlier_frames_are_answered) {
  auto l = listen(recording_handler(sink()), with_framing("length:4,max=1k"));
  auto s = connect_blocking(l.port());
  // The bad header comes in the same write as the good frames; its payload
  // never needs to arrive.
  std::string good = frame4("one") + frame4("two");
  auto res = pump(s, good + be32(5000) + "abc", good.size() + 1);
  BOOST_TEST(res.in == good);
  BOOST_TEST(res.eof);
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1));
  auto id = log.by_id.begin()->first;
  BOOST_TEST(log.check(id).empty(), log.render(id));
  BOOST_TEST(log.render(id) ==
             "open bytes bytes error(frame_too_large) closed exit");
  auto& entries = log.by_id[id];
  auto text = describe(entries[entries.size() - 3].err);
  BOOST_TEST(contains(text, "5000"), text);
  BOOST_TEST(contains(text, "1024"), text);
  BOOST_TEST(contains(text, "127.0.0.1:"), text);
}

BOOST_AUTO_TEST_CASE(frame_cut_short_by_the_peer_is_frame_truncated) {
  auto l = listen(recording_handler(sink()), with_framing("length:4"));
  auto s = connect_blocking(l.port());
  std::string good = frame4("whole");
  auto res = pump(s, good + be32(10) + "abc", good.size() + 1, true);
  BOOST_TEST(res.in == good);
  BOOST_TEST(res.eof);
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1));
  auto id = log.by_id.begin()->first;
  BOOST_TEST(log.render(id) == "open bytes error(frame_truncated) closed exit");
}

BOOST_AUTO_TEST_CASE(lines_accept_crlf_and_go_out_with_lf) {
  seen_frames seen;
  auto l = listen(recording_handler(sink(), seen.echo_and_keep()),
                  with_framing("line"));
  auto s = connect_blocking(l.port());
  auto res = pump(s, "alpha\r\nbeta\n\ngamma\n", 18);
  BOOST_TEST(res.in == "alpha\nbeta\n\ngamma\n");
  BOOST_TEST(seen.get() ==
                 (std::vector<std::string>{"alpha", "beta", "", "gamma"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(line_without_delimiter_within_max_fails) {
  auto l = listen(recording_handler(sink()), with_framing("line,max=16"));
  auto s = connect_blocking(l.port());
  auto res = pump(s, "ok\n" + std::string(40, 'z'), 4);
  BOOST_TEST(res.in == "ok\n");
  BOOST_TEST(res.eof);
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1));
  auto id = log.by_id.begin()->first;
  BOOST_TEST(log.error_kind(id) == errc::frame_too_large, log.render(id));
}

BOOST_AUTO_TEST_CASE(reply_the_codec_cannot_carry_fails_the_connection) {
  // A reply with the delimiter inside would reach the peer as two lines.
  auto hook = [](caf::event_based_actor*, const caller&, const bytes&) {
    return bytes{"two\nlines"};
  };
  auto l = listen(recording_handler(sink(), hook), with_framing("line"));
  auto s = connect_blocking(l.port());
  auto res = pump(s, "ask\n", 1);
  BOOST_TEST(res.in.empty()); // nothing half-framed went out
  BOOST_TEST_REQUIRE(log.collect_exits(self, 1));
  auto id = log.by_id.begin()->first;
  BOOST_TEST(log.error_kind(id) == errc::frame_invalid, log.render(id));
  BOOST_TEST(log.check(id).empty(), log.render(id));
}

BOOST_AUTO_TEST_CASE(caller_writes_are_framed_too) {
  auto hook = [](caf::event_based_actor*, const caller& conn, const bytes& in) {
    BOOST_CHECK(conn.write(bytes{"first"}));
    BOOST_CHECK(conn.write(bytes{}));
    return in;
  };
  auto l = listen(recording_handler(sink(), hook), with_framing("length:4"));
  auto s = connect_blocking(l.port());
  auto want = frame4("first") + frame4("") + frame4("q");
  auto res = pump(s, frame4("q"), want.size());
  BOOST_TEST(res.in == want);
}

BOOST_AUTO_TEST_CASE(blocking_client_reads_frames) {
  auto l = listen(framed_echo(), with_framing("length:2:le"));
  client_config cc;
  cc.connection.framing = spec("length:2:le");
  auto c = connect(l.port(), cc);
  for (const auto& msg : std::vector<std::string>{"hello", "", "world",
                                                  std::string(60000, 'w')}) {
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{msg}));
    auto got = c.read_frame(5s);
    BOOST_TEST_REQUIRE(static_cast<bool>(got), why(got));
    BOOST_TEST(got->to_string() == msg);
  }
  // Above what a 2-byte header can say: refused, and the connection ends.
  auto err = c.write_bytes(bytes{std::string(70000, 'x')});
  BOOST_TEST(kind(err) == errc::closed, describe(err));
}

BOOST_AUTO_TEST_CASE(read_frame_without_a_codec_is_a_config_error) {
  auto l = listen(echo_handler());
  auto c = connect(l.port());
  auto got = c.read_frame(1s);
  BOOST_TEST_REQUIRE(!got);
  BOOST_TEST(kind(got.error()) == errc::invalid_config);
  BOOST_TEST(contains(describe(got.error()), "framing"), describe(got.error()));
}

BOOST_AUTO_TEST_CASE(blocking_client_sees_a_bad_frame_from_the_server) {
  // A raw server that answers with a header announcing more than the
  // client's maximum.
  auto hook = [](caf::event_based_actor*, const caller&, const bytes&) {
    return bytes{frame4("fine") + be32(1 << 20)};
  };
  auto l = listen(recording_handler(sink(), hook));
  client_config cc;
  cc.connection.framing = spec("length:4,max=64k");
  auto c = connect(l.port(), cc);
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"go"}));
  auto first = c.read_frame(5s);
  BOOST_TEST_REQUIRE(static_cast<bool>(first), why(first));
  BOOST_TEST(first->to_string() == "fine");
  auto second = c.read_frame(5s);
  BOOST_TEST_REQUIRE(!second);
  BOOST_TEST(kind(second.error()) == errc::frame_too_large,
             describe(second.error()));
}

BOOST_AUTO_TEST_CASE(frames_over_tls) {
  auto lc = with_framing("length:4");
  lc.tls = server_tls();
  auto l = listen(framed_echo(), lc);
  client_config cc;
  cc.tls = client_tls();
  cc.connection.framing = spec("length:4");
  auto c = connect(l.port(), cc);
  for (const auto& msg :
       std::vector<std::string>{"over", "", std::string(100 * 1024, 't')}) {
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{msg}));
    auto got = c.read_frame(5s);
    BOOST_TEST_REQUIRE(static_cast<bool>(got), why(got));
    BOOST_TEST((got->to_string() == msg));
  }
}

BOOST_AUTO_TEST_CASE(half_close_with_a_codec_of_empty_frames_is_refused) {
  listener_config lc = with_framing("line");
  lc.connection.half_close = true;
  lc.host = "127.0.0.1";
  auto res = spawn_listener(*rt, lc, echo_handler());
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST(kind(res.error()) == errc::invalid_config);
  BOOST_TEST(contains(describe(res.error()), "listener.connection.half_close"),
             describe(res.error()));
}

BOOST_AUTO_TEST_CASE(request_to_write_through_the_connection_actor_is_acked) {
  // One command path: a request answered once written, or refused with the
  // reason, whether it comes through caller, client handle or actor.
  caf::actor conn_actor;
  std::mutex mtx;
  auto handler = [&](caf::event_based_actor* self,
                     const caller&) -> caf::expected<service> {
    {
      std::lock_guard<std::mutex> guard{mtx};
      conn_actor = caf::actor_cast<caf::actor>(self);
    }
    return echo_service();
  };
  auto l = listen(handler, with_framing("length:4"));
  auto s = connect_blocking(l.port());
  BOOST_TEST_REQUIRE(pump(s, frame4("hi"), 6).in == frame4("hi"));
  caf::actor target;
  {
    std::lock_guard<std::mutex> guard{mtx};
    target = conn_actor;
  }
  BOOST_TEST_REQUIRE(static_cast<bool>(target));
  bool acked = false;
  self->request(target, 5s, write_atom::value, bytes{"pushed"})
      .receive([&] { acked = true; },
               [&](caf::error& err) { BOOST_ERROR(describe(err)); });
  BOOST_TEST(acked);
  BOOST_TEST(pump(s, {}, 10).in == frame4("pushed"));
  self->monitor(target);
  s.close();
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; }, caf::after(10s) >> [] {});
  BOOST_TEST_REQUIRE(down);
  // The connection is gone: the request is refused, never left unanswered.
  bool refused = false;
  self->request(target, 5s, write_atom::value, bytes{"late"})
      .receive(
          [] {},
          [&](caf::error& err) { refused = err != caf::sec::request_timeout; });
  BOOST_TEST(refused);
}

BOOST_AUTO_TEST_SUITE_END()
