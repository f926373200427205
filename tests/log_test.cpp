#include "tcpactor/log.hpp" // first: proves the header stands alone

#include <boost/test/unit_test.hpp>

#include "fixtures.hpp"

using namespace tcpactor;

namespace {

// 2026-12-05T07:08:35.123Z
const auto at = std::chrono::system_clock::time_point{
    std::chrono::milliseconds{1'796'454'515'123}};

log::record closed_record() {
  log::record r;
  r.severity = log::level::info;
  r.event = "connection_closed";
  r.message = "connection 7 closed peer=127.0.0.1:5000 reason=idle_timeout";
  r.conn_id = 7;
  r.peer = "127.0.0.1:5000";
  r.reason = "idle_timeout";
  return r;
}

} // namespace

BOOST_AUTO_TEST_SUITE(log_tests)

BOOST_AUTO_TEST_CASE(formats_parse_and_print_by_name) {
  for (auto f : {log::format::text, log::format::json, log::format::logfmt}) {
    log::format back = log::format::text;
    BOOST_TEST(log::from_string(log::to_string(f), back));
    BOOST_TEST((back == f));
  }
  log::format x = log::format::json;
  BOOST_TEST(!log::from_string("JSON", x));
  BOOST_TEST(!log::from_string("", x));
  BOOST_TEST((x == log::format::json));
}

BOOST_AUTO_TEST_CASE(text_keeps_the_line_people_read) {
  auto line = log::render(log::format::text, closed_record(), at);
  BOOST_TEST(line == "2026-12-05T07:08:35.123Z info    connection 7 closed "
                     "peer=127.0.0.1:5000 reason=idle_timeout");
}

BOOST_AUTO_TEST_CASE(text_escapes_control_characters_so_a_line_stays_one) {
  log::record r;
  r.severity = log::level::warning;
  r.message = "a\nb\rc\td";
  auto line = log::render(log::format::text, r, at);
  BOOST_TEST(line == "2026-12-05T07:08:35.123Z warning a\\u000ab\\u000dc\td");
}

BOOST_AUTO_TEST_CASE(json_carries_every_field) {
  auto line = log::render(log::format::json, closed_record(), at);
  BOOST_TEST(line ==
             "{\"time\":\"2026-12-05T07:08:35.123Z\",\"level\":\"info\","
             "\"event\":\"connection_closed\",\"conn_id\":7,"
             "\"peer\":\"127.0.0.1:5000\",\"reason\":\"idle_timeout\","
             "\"msg\":\"connection 7 closed peer=127.0.0.1:5000 "
             "reason=idle_timeout\"}");
}

BOOST_AUTO_TEST_CASE(json_leaves_out_what_a_line_does_not_have) {
  log::record r;
  r.severity = log::level::error;
  r.message = "stopped";
  auto line = log::render(log::format::json, r, at);
  BOOST_TEST(line ==
             "{\"time\":\"2026-12-05T07:08:35.123Z\",\"level\":\"error\","
             "\"event\":\"message\",\"msg\":\"stopped\"}");
}

BOOST_AUTO_TEST_CASE(json_escapes_quotes_backslashes_controls_and_bad_utf8) {
  log::record r;
  const std::string msg = "q\"b\\n\nr\rt\tz\x01 del\x7f \xc3\xa9 bad\xff"
                          "end \xc0\xaf";
  r.message = msg;
  r.peer = "[::1]:1";
  auto line = log::render(log::format::json, r, at);
  BOOST_TEST(line ==
             "{\"time\":\"2026-12-05T07:08:35.123Z\",\"level\":\"info\","
             "\"event\":\"message\",\"peer\":\"[::1]:1\",\"msg\":\"q\\\"b\\\\n"
             "\\nr\\rt\\tz\\u0001 del\\u007f \xc3\xa9 bad\xef\xbf\xbd"
             "end \xef\xbf\xbd\xef\xbf\xbd\"}");
}

BOOST_AUTO_TEST_CASE(logfmt_quotes_only_what_needs_it) {
  auto line = log::render(log::format::logfmt, closed_record(), at);
  BOOST_TEST(line == "time=2026-12-05T07:08:35.123Z level=info "
                     "event=connection_closed conn_id=7 peer=127.0.0.1:5000 "
                     "reason=idle_timeout msg=\"connection 7 closed "
                     "peer=127.0.0.1:5000 reason=idle_timeout\"");
}

BOOST_AUTO_TEST_CASE(logfmt_escapes_inside_quotes) {
  log::record r;
  r.severity = log::level::debug;
  r.event = "x";
  r.message = "say \"hi\"\\\n";
  auto line = log::render(log::format::logfmt, r, at);
  BOOST_TEST(line == "time=2026-12-05T07:08:35.123Z level=debug event=x "
                     "msg=\"say \\\"hi\\\"\\\\\\n\"");
  r.message = "";
  line = log::render(log::format::logfmt, r, at);
  BOOST_TEST(line ==
             "time=2026-12-05T07:08:35.123Z level=debug event=x msg=\"\"");
  r.message = "a=b";
  line = log::render(log::format::logfmt, r, at);
  BOOST_TEST(line ==
             "time=2026-12-05T07:08:35.123Z level=debug event=x msg=\"a=b\"");
}

BOOST_AUTO_TEST_CASE(times_before_a_second_boundary_keep_their_millis) {
  log::record r;
  r.message = "m";
  auto t = std::chrono::system_clock::time_point{
      std::chrono::milliseconds{1'796'454'515'999}};
  BOOST_TEST(log::render(log::format::text, r, t).substr(0, 24) ==
             "2026-12-05T07:08:35.999Z");
}

BOOST_AUTO_TEST_SUITE_END()
