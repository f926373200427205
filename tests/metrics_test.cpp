#include "tcpactor/metrics.hpp" // first: proves the header stands alone

#include <atomic>
#include <memory>

#include "fixtures.hpp"
#include "tls_certs.hpp"

using namespace tcpactor;
using namespace tcpactor::test;
using namespace tcpactor::test::posix;

namespace {

uint64_t closed_by(const runtime_metrics& m, const std::string& reason) {
  for (auto& [name, n] : m.connections_closed)
    if (name == reason)
      return n;
  BOOST_FAIL("no close reason " << reason << " listed");
  return 0;
}

uint64_t closed_total(const runtime_metrics& m) {
  uint64_t n = 0;
  for (auto& kvp : m.connections_closed)
    n += kvp.second;
  return n;
}

struct metrics_fixture : runtime_fixture {
  /// Waits until `n` accepted connections closed, then returns the snapshot.
  runtime_metrics await_closed(uint64_t n) {
    runtime_metrics m;
    bool ok = wait_until([&] { return closed_total(m = rt->metrics()) >= n; });
    BOOST_TEST_REQUIRE(ok, "only " << closed_total(m) << " of " << n
                                   << " connections counted as closed");
    return m;
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(metrics_tests, metrics_fixture)

BOOST_AUTO_TEST_CASE(a_fresh_runtime_counts_nothing) {
  auto m = rt->metrics();
  BOOST_TEST(m.connections_open == 0u);
  BOOST_TEST(m.connections_accepted == 0u);
  BOOST_TEST(closed_total(m) == 0u);
  BOOST_TEST(m.bytes_received == 0u);
  BOOST_TEST(m.bytes_sent == 0u);
  BOOST_TEST(m.connection_lifetime.count == 0u);
  BOOST_TEST(m.certificates.empty());
  // Every errc is listed beside clean and other, zero or not.
  BOOST_TEST(closed_by(m, "clean") == 0u);
  BOOST_TEST(closed_by(m, "idle_timeout") == 0u);
  BOOST_TEST(closed_by(m, "other") == 0u);
}

BOOST_AUTO_TEST_CASE(echoed_bytes_are_counted_exactly_and_a_clean_close) {
  auto l = listen(echo_handler());
  const std::string payload(100'000, 'x');
  {
    auto s = connect_blocking(l.port());
    runtime_metrics m;
    auto res = pump(s, payload, payload.size());
    BOOST_TEST_REQUIRE(res.in.size() == payload.size());
    // The server counts a send once the kernel took it, which the peer may
    // beat: wait for the count rather than read it once.
    BOOST_TEST(wait_until(
        [&] { return (m = rt->metrics()).bytes_sent == payload.size(); }));
    BOOST_TEST(m.bytes_sent == payload.size());
    BOOST_TEST(m.connections_accepted == 1u);
    BOOST_TEST(m.connections_open == 1u);
    // Received before it was echoed, so counted before the echo was sent.
    BOOST_TEST(m.bytes_received == payload.size());
    // The peer closes in order: FIN, no error.
  }
  auto m = await_closed(1);
  BOOST_TEST(closed_by(m, "clean") == 1u);
  BOOST_TEST(m.connections_open == 0u);
  BOOST_TEST(m.bytes_received == payload.size());
  BOOST_TEST(m.bytes_sent == payload.size());
  BOOST_TEST(m.unprocessed_bytes == 0u);
  BOOST_TEST(m.queued_bytes == 0u);
  BOOST_TEST(m.connection_lifetime.count == 1u);
  BOOST_TEST(m.connection_lifetime.sum > 0.0);
  BOOST_TEST(m.connection_lifetime.sum < 10.0);
  // Cumulative buckets end at the count; a loopback echo takes < 10 s.
  auto& h = m.connection_lifetime;
  BOOST_TEST_REQUIRE(h.bounds.size() == h.cumulative.size());
  for (std::size_t i = 1; i < h.cumulative.size(); ++i)
    BOOST_TEST(h.cumulative[i - 1] <= h.cumulative[i]);
  BOOST_TEST(h.cumulative.back() == 1u);
}

BOOST_AUTO_TEST_CASE(close_reasons_are_counted_by_errc) {
  listener_config lc;
  lc.connection.idle_timeout = 100ms;
  auto l = listen(echo_handler(), lc);
  auto silent = connect_blocking(l.port());
  auto res = read_to_end(silent, 10s);
  BOOST_TEST_REQUIRE(res.eof, "the idle connection was not closed");
  auto reset = connect_blocking(l.port());
  BOOST_TEST_REQUIRE(pump(reset, "ping", 4).in == "ping");
  reset.reset();
  auto m = await_closed(2);
  BOOST_TEST(closed_by(m, "idle_timeout") == 1u);
  BOOST_TEST(closed_by(m, "connection_reset") == 1u);
  BOOST_TEST(closed_by(m, "clean") == 0u);
  BOOST_TEST(m.connections_accepted == 2u);
  BOOST_TEST(m.connections_open == 0u);
}

BOOST_AUTO_TEST_CASE(a_connection_over_the_limit_counts_as_refused) {
  listener_config lc;
  lc.max_connections = 1;
  auto l = listen(echo_handler(), lc);
  auto a = connect_blocking(l.port());
  BOOST_TEST_REQUIRE(pump(a, "ping", 4).in == "ping");
  {
    auto b = start_connect(l.port());
    if (b) {
      auto res = read_to_end(b, 5s);
      BOOST_TEST(res.error == ECONNRESET, "error=" << strerror(res.error));
    }
  }
  runtime_metrics m;
  BOOST_TEST(
      wait_until([&] { return (m = rt->metrics()).refused_over_limit == 1u; }));
  BOOST_TEST(m.refused_no_descriptors == 0u);
  // Refused connections were never accepted.
  BOOST_TEST(m.connections_accepted == 1u);
  BOOST_TEST(m.connections_open == 1u);
}

BOOST_AUTO_TEST_CASE(unprocessed_and_queued_bytes_are_live_gauges) {
  // The actor keeps every chunk unanswered, and writes 4 MiB to a peer that
  // does not read yet.
  auto hold =
      std::make_shared<std::vector<caf::typed_response_promise<bytes>>>();
  auto writer = std::make_shared<caller>();
  auto l = listen([hold, writer](caf::event_based_actor* self,
                                 const caller& conn) -> caf::expected<service> {
    *writer = conn;
    return service{
        [self, hold](const bytes&) {
          auto rp = self->make_response_promise<bytes>();
          hold->push_back(rp);
          return rp;
        },
        [](error_atom, const caf::error&) {},
        [](closed_atom) {},
    };
  });
  auto s = start_connect(l.port(), 64 * 1024);
  BOOST_TEST_REQUIRE(static_cast<bool>(s));
  pollfd p{s.fd(), POLLOUT, 0};
  BOOST_TEST_REQUIRE(::poll(&p, 1, 10'000) == 1);
  BOOST_TEST_REQUIRE(::send(s.fd(), "hello", 5, MSG_NOSIGNAL) == 5);
  runtime_metrics m;
  BOOST_TEST(wait_until([&] { return (m = rt->metrics()).unprocessed_bytes; }));
  // A short read is copied into a chunk of its own size.
  BOOST_TEST(m.unprocessed_bytes == 5u);
  BOOST_TEST_REQUIRE(wait_until([&] { return static_cast<bool>(*writer); }));
  const std::size_t big = 4 * 1024 * 1024;
  BOOST_TEST_REQUIRE(writer->write(bytes{std::string(big, 'q')}));
  BOOST_TEST(wait_until([&] { return (m = rt->metrics()).queued_bytes > 0; }));
  BOOST_TEST(m.queued_bytes <= big);
  auto res = pump(s, {}, big);
  BOOST_TEST_REQUIRE(res.in.size() == big);
  BOOST_TEST(wait_until([&] {
    m = rt->metrics();
    return m.queued_bytes == 0 && m.bytes_sent == big;
  }));
  BOOST_TEST(m.queued_bytes == 0u);
  BOOST_TEST(m.bytes_sent == big);
  // A reset: an orderly close would wait for the held chunks' answers.
  s.reset();
  auto closed = await_closed(1);
  BOOST_TEST(closed_by(closed, "connection_reset") == 1u);
  // Held chunks are forgotten with their connection.
  BOOST_TEST(closed.unprocessed_bytes == 0u);
  BOOST_TEST(closed.queued_bytes == 0u);
}

BOOST_AUTO_TEST_CASE(tls_handshakes_failures_and_certificates_are_counted) {
  listener_config lc;
  lc.tls = server_tls();
  auto l = listen(echo_handler(), lc);
  {
    // Not TLS at all.
    auto s = connect_blocking(l.port());
    auto res = pump(s, "GET / HTTP/1.1\r\n\r\n", 1'000'000, false, 10s);
    BOOST_TEST(!res.timed_out);
  }
  runtime_metrics m;
  BOOST_TEST(
      wait_until([&] { return (m = rt->metrics()).tls_handshake_failures; }));
  BOOST_TEST(m.tls_handshake_failures == 1u);
  m = await_closed(1);
  BOOST_TEST(closed_by(m, "tls_handshake_failed") == 1u);
  // A connection that never opened has no lifetime.
  BOOST_TEST(m.connection_lifetime.count == 0u);
  BOOST_TEST(m.tls_handshake_duration.count == 0u);
  {
    client_config cc;
    cc.tls = client_tls();
    auto c = connect(l.port(), cc);
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"ping"}));
    BOOST_TEST(read_exactly(c, 4) == "ping");
    m = rt->metrics();
    BOOST_TEST(m.tls_handshake_duration.count == 1u);
    BOOST_TEST(m.tls_handshake_duration.sum > 0.0);
    BOOST_TEST(m.tls_handshake_duration.sum < 10.0);
    c.close();
  }
  m = await_closed(2);
  BOOST_TEST(m.tls_handshake_failures == 1u);
  BOOST_TEST(m.connection_lifetime.count == 1u);
  BOOST_TEST_REQUIRE(m.certificates.size() == 1u);
  auto& cert = m.certificates.front();
  BOOST_TEST(cert.file == shared_certs().server_cert);
  BOOST_TEST(cert.sni.empty());
  BOOST_TEST(cert.listener == "127.0.0.1:" + std::to_string(l.port()));
  // tls_certs makes certificates valid for days, not years.
  BOOST_TEST(cert.seconds_left > 0);
  BOOST_TEST(cert.seconds_left < int64_t{3650} * 86400);
}

BOOST_AUTO_TEST_CASE(an_expired_certificate_shows_negative_seconds) {
  listener_config lc;
  lc.tls.enabled = true;
  lc.tls.cert_file = shared_certs().expired_cert;
  lc.tls.key_file = shared_certs().expired_key;
  lc.tls.sni_certificates.push_back(
      {"other.test", shared_certs().other_cert, shared_certs().other_key, {}});
  auto l = listen(echo_handler(), lc);
  auto m = rt->metrics();
  BOOST_TEST_REQUIRE(m.certificates.size() == 2u);
  // Valid until 2020-01-02: years ago.
  BOOST_TEST(m.certificates[0].file == shared_certs().expired_cert);
  BOOST_TEST(m.certificates[0].seconds_left < -int64_t{86400} * 365);
  BOOST_TEST(m.certificates[1].sni == "other.test");
  BOOST_TEST(m.certificates[1].file == shared_certs().other_cert);
  BOOST_TEST(m.certificates[1].seconds_left > 0);
  // A stopped listener serves no certificate.
  caf::scoped_actor self{sys};
  self->request(l.handle(), 10s, graceful_stop_atom::value)
      .receive([] {}, [](const caf::error&) { BOOST_FAIL("stop failed"); });
  BOOST_TEST(rt->metrics().certificates.empty());
}

BOOST_AUTO_TEST_CASE(prometheus_text_has_help_type_units_and_labels) {
  runtime_metrics m;
  m.connections_open = 3;
  m.connections_accepted = 10;
  m.connections_closed = {{"clean", 5}, {"idle_timeout", 2}};
  m.refused_over_limit = 4;
  m.bytes_received = 1234;
  m.bytes_sent = 5678;
  m.connection_lifetime.bounds = {0.1, 1};
  m.connection_lifetime.cumulative = {1, 6};
  m.connection_lifetime.count = 7;
  m.connection_lifetime.sum = 12.5;
  m.certificates.push_back({"127.0.0.1:7443", "/etc/a \"b\"\\c.pem", "", 42});
  auto text = render_prometheus(m);
  BOOST_TEST_MESSAGE(text);
  auto has = [&](const std::string& line) {
    BOOST_TEST(contains(text, line + "\n"), "missing: " << line);
  };
  has("# TYPE tcpactor_connections_open gauge");
  has("tcpactor_connections_open 3");
  has("# TYPE tcpactor_connections_accepted_total counter");
  has("tcpactor_connections_accepted_total 10");
  has("tcpactor_connections_closed_total{reason=\"clean\"} 5");
  has("tcpactor_connections_closed_total{reason=\"idle_timeout\"} 2");
  has("tcpactor_connections_refused_total{cause=\"over_limit\"} 4");
  has("tcpactor_connections_refused_total{cause=\"no_descriptors\"} 0");
  has("tcpactor_received_bytes_total 1234");
  has("tcpactor_sent_bytes_total 5678");
  has("# TYPE tcpactor_connection_lifetime_seconds histogram");
  has("tcpactor_connection_lifetime_seconds_bucket{le=\"0.1\"} 1");
  has("tcpactor_connection_lifetime_seconds_bucket{le=\"1\"} 6");
  has("tcpactor_connection_lifetime_seconds_bucket{le=\"+Inf\"} 7");
  has("tcpactor_connection_lifetime_seconds_sum 12.5");
  has("tcpactor_connection_lifetime_seconds_count 7");
  has("tcpactor_tls_certificate_expiry_seconds{listener=\"127.0.0.1:7443\","
      "file=\"/etc/a \\\"b\\\"\\\\c.pem\",sni=\"\"} 42");
  // Every family has its HELP line before its TYPE line.
  for (auto family :
       {"connections_open", "connections_closed_total",
        "tls_handshake_duration_seconds", "tls_certificate_expiry_seconds"})
    BOOST_TEST(contains(text, std::string{"# HELP tcpactor_"} + family + " "),
               family);
}

BOOST_AUTO_TEST_SUITE_END()
