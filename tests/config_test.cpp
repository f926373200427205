#include "tcpactor/config.hpp"

#include <functional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <boost/test/unit_test.hpp>

#include "tcpactor/errors.hpp"
#include "tcpactor/runtime.hpp"

using namespace tcpactor;
using namespace std::chrono_literals;

namespace {

/// One broken setting and the field its error must name.
template <class Config>
struct bad_case {
  std::string field;
  std::function<void(Config&)> breakit;
};

/// Checks that each case fails validation as invalid_config naming its field.
template <class Config>
void check_cases(const Config& good,
                 const std::vector<bad_case<Config>>& cases) {
  for (auto& c : cases) {
    BOOST_TEST_CONTEXT("field " << c.field) {
      auto cfg = good;
      c.breakit(cfg);
      auto err = cfg.validate();
      BOOST_TEST_REQUIRE(static_cast<bool>(err), "accepted a bad " << c.field);
      BOOST_TEST((kind(err) == errc::invalid_config), describe(err));
      auto text = describe(err);
      BOOST_TEST((text.find(c.field + ":") != std::string::npos), text);
    }
  }
}

client_config good_client() {
  client_config cc;
  cc.host = "127.0.0.1";
  cc.port = 9;
  return cc;
}

template <class Config>
std::vector<bad_case<Config>>
connection_cases(const std::string& prefix,
                 std::function<connection_config&(Config&)> conn) {
  auto p = prefix + ".";
  return {
      {p + "read_chunk", [conn](Config& x) { conn(x).read_chunk = 511; }},
      {p + "read_chunk",
       [conn](Config& x) {
         conn(x).read_chunk = 16 * 1024 * 1024 + 1;
         conn(x).max_unprocessed_bytes = 32 * 1024 * 1024;
       }},
      {p + "max_unprocessed_bytes",
       [conn](Config& x) {
         conn(x).max_unprocessed_bytes = conn(x).read_chunk - 1;
       }},
      {p + "max_unprocessed_chunks",
       [conn](Config& x) { conn(x).max_unprocessed_chunks = 0; }},
      {p + "write_high_watermark",
       [conn](Config& x) {
         conn(x).write_high_watermark = 0;
         conn(x).write_low_watermark = 0;
       }},
      {p + "write_low_watermark",
       [conn](Config& x) {
         conn(x).write_low_watermark = conn(x).write_high_watermark + 1;
       }},
      {p + "write_queue_limit",
       [conn](Config& x) {
         conn(x).write_queue_limit = conn(x).write_high_watermark - 1;
       }},
      {p + "close_timeout", [conn](Config& x) { conn(x).close_timeout = 0ms; }},
      {p + "close_timeout",
       [conn](Config& x) { conn(x).close_timeout = -1ms; }},
  };
}

} // namespace

BOOST_AUTO_TEST_SUITE(config_tests)

BOOST_AUTO_TEST_CASE(defaults_are_valid) {
  BOOST_TEST(!runtime_config{}.validate());
  BOOST_TEST(!connection_config{}.validate());
  BOOST_TEST(!listener_config{}.validate());
  BOOST_TEST(!good_client().validate());
}

BOOST_AUTO_TEST_CASE(boundaries_that_are_allowed) {
  connection_config cc;
  cc.read_chunk = 512;
  cc.max_unprocessed_bytes = 512;
  cc.max_unprocessed_chunks = 1;
  cc.write_high_watermark = 1;
  cc.write_low_watermark = 1;
  cc.write_queue_limit = 1;
  cc.close_timeout = 1ms;
  auto err = cc.validate();
  BOOST_TEST(!err, describe(err));
  cc.read_chunk = 16 * 1024 * 1024;
  cc.max_unprocessed_bytes = cc.read_chunk;
  err = cc.validate();
  BOOST_TEST(!err, describe(err));
  runtime_config rc;
  rc.io_threads = 1024;
  err = rc.validate();
  BOOST_TEST(!err, describe(err));
  auto cl = good_client();
  cl.port = 65535;
  cl.local_host = "127.0.0.1";
  cl.local_port = 40000;
  err = cl.validate();
  BOOST_TEST(!err, describe(err));
}

BOOST_AUTO_TEST_CASE(runtime_error_names_io_threads) {
  check_cases<runtime_config>(
      {},
      {{"runtime.io_threads", [](runtime_config& x) { x.io_threads = 1025; }}});
}

BOOST_AUTO_TEST_CASE(connection_errors_name_the_field) {
  check_cases<connection_config>(
      {}, connection_cases<connection_config>(
              "connection",
              [](connection_config& x) -> connection_config& { return x; }));
}

BOOST_AUTO_TEST_CASE(connection_errors_use_the_given_prefix) {
  connection_config cc;
  cc.max_unprocessed_chunks = 0;
  auto err = cc.validate("server.conn");
  BOOST_TEST((kind(err) == errc::invalid_config), describe(err));
  BOOST_TEST((describe(err).find("server.conn.max_unprocessed_chunks") !=
              std::string::npos),
             describe(err));
}

BOOST_AUTO_TEST_CASE(listener_errors_name_the_field) {
  std::vector<bad_case<listener_config>> cases{
      {"listener.host", [](listener_config& x) { x.host.clear(); }},
      {"listener.backlog", [](listener_config& x) { x.backlog = 0; }},
      {"listener.backlog", [](listener_config& x) { x.backlog = -5; }},
  };
  for (auto& c : connection_cases<listener_config>(
           "listener.connection", [](listener_config& x) -> connection_config& {
             return x.connection;
           }))
    cases.push_back(c);
  check_cases(listener_config{}, cases);
}

BOOST_AUTO_TEST_CASE(client_errors_name_the_field) {
  std::vector<bad_case<client_config>> cases{
      {"client.host", [](client_config& x) { x.host.clear(); }},
      {"client.port", [](client_config& x) { x.port = 0; }},
      {"client.connect_timeout",
       [](client_config& x) { x.connect_timeout = 0ms; }},
      {"client.read_timeout", [](client_config& x) { x.read_timeout = 0ms; }},
      {"client.write_timeout",
       [](client_config& x) { x.write_timeout = -1ms; }},
      {"client.local_host", [](client_config& x) { x.local_port = 1234; }},
  };
  for (auto& c : connection_cases<client_config>(
           "client.connection",
           [](client_config& x) -> connection_config& { return x.connection; }))
    cases.push_back(c);
  check_cases(good_client(), cases);
}

BOOST_AUTO_TEST_CASE(runtime_make_refuses_bad_config) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  runtime_config rc;
  rc.io_threads = 5000;
  auto rt = runtime::make(sys, rc);
  BOOST_TEST_REQUIRE(!rt, "runtime started with 5000 I/O threads");
  BOOST_TEST((kind(rt.error()) == errc::invalid_config), describe(rt.error()));
  BOOST_TEST(
      (describe(rt.error()).find("runtime.io_threads") != std::string::npos),
      describe(rt.error()));
}

BOOST_AUTO_TEST_SUITE_END()
