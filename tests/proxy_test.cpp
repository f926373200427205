// PROXY protocol on a listener, driven by raw POSIX clients that send the
// header themselves (and OpenSSL on the same socket for TLS behind it).

#include "tcpactor/listener.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <tuple>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "fixtures.hpp"
#include "tls_certs.hpp"

using namespace tcpactor;
using namespace tcpactor::test;
using namespace tcpactor::test::posix;
using namespace std::literals;

namespace {

using endpoints = std::tuple<std::string, uint16_t, std::string, uint16_t>;

/// An echo listener with a PROXY protocol mode that reports, per connection
/// its handler sees, the caller's remote and local address to `probe`.
struct proxy_fixture : runtime_fixture {
  proxy_fixture() : probe(sys), observer(sys) {
    // nop
  }

  listener listen_proxy(proxy_protocol mode, listener_config lc = {}) {
    lc.proxy_protocol = mode;
    return listen(
        [hdl = caf::actor{probe},
         calls = calls](caf::event_based_actor*,
                        const caller& conn) -> caf::expected<service> {
          ++*calls;
          caf::anon_send(hdl, conn.remote_host(), conn.remote_port(),
                         conn.local_host(), conn.local_port());
          return echo_service();
        },
        lc, caf::actor{observer});
  }

  /// What the next connection's handler saw.
  endpoints seen() {
    endpoints result;
    probe->receive(
        [&](std::string& rhost, uint16_t rport, std::string& lhost,
            uint16_t lport) {
          result = {std::move(rhost), rport, std::move(lhost), lport};
        },
        caf::after(10s) >> [] { BOOST_FAIL("connect handler did not run"); });
    return result;
  }

  caf::scoped_actor probe;
  caf::scoped_actor observer;
  std::shared_ptr<std::atomic<int>> calls =
      std::make_shared<std::atomic<int>>(0);
};

const std::string v2_sig = "\r\n\r\n\0\r\nQUIT\n"s;

/// v2 PROXY over TCP/IPv4: 192.0.2.1:51000 -> 198.51.100.7:443.
std::string v2_inet() {
  return v2_sig + "\x21\x11\x00\x0c"s + "\xc0\x00\x02\x01\xc6\x33\x64\x07"s +
         "\xc7\x38\x01\xbb"s;
}

/// v2 PROXY over TCP/IPv6: 2001:db8::1:51000 -> 2001:db8::2:443, plus an
/// ALPN TLV that must be skipped.
std::string v2_inet6() {
  std::string addrs(32, '\0');
  addrs[0] = '\x20', addrs[1] = '\x01', addrs[2] = '\x0d', addrs[3] = '\xb8';
  addrs[15] = '\x01';
  addrs[16] = '\x20', addrs[17] = '\x01', addrs[18] = '\x0d',
  addrs[19] = '\xb8';
  addrs[31] = '\x02';
  return v2_sig + "\x21\x21\x00\x29"s + addrs + "\xc7\x38\x01\xbb"s +
         "\x01\x00\x02h2"s;
}

const std::string v1_tcp4 = "PROXY TCP4 192.0.2.1 198.51.100.7 51000 443\r\n";

/// Sends `data` and reads until `expect` bytes came back.
std::string exchange(raw_socket& s, const std::string& data,
                     std::size_t expect) {
  auto res = pump(s, data, expect);
  BOOST_TEST(!res.timed_out);
  BOOST_TEST(res.error == 0, strerror(res.error));
  return res.in;
}

/// The event a failed header leaves, which must be proxy_failed.
connection_event failure_event(caf::scoped_actor& observer) {
  auto ev = await_event(observer, connection_event::proxy_failed);
  BOOST_TEST_REQUIRE(ev.has_value(), "no proxy_failed event");
  return *ev;
}

struct ssl_ctx_free {
  void operator()(SSL_CTX* x) const { SSL_CTX_free(x); }
};
struct ssl_free {
  void operator()(SSL* x) const { SSL_free(x); }
};

/// A TLS client on a raw socket that already sent a PROXY header, or sends
/// it in the same write as its ClientHello (`header` non-empty): the server
/// must hand whatever followed the header to the handshake.
struct tls_after_header {
  std::unique_ptr<SSL_CTX, ssl_ctx_free> ctx{SSL_CTX_new(TLS_client_method())};
  std::unique_ptr<SSL, ssl_free> ssl;

  tls_after_header(int fd, const std::string& header) {
    BOOST_TEST_REQUIRE(ctx != nullptr);
    BOOST_TEST_REQUIRE(SSL_CTX_load_verify_locations(
                           ctx.get(), shared_certs().ca.c_str(), nullptr) == 1);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    ssl.reset(SSL_new(ctx.get()));
    SSL_set_tlsext_host_name(ssl.get(), "localhost");
    SSL_set1_host(ssl.get(), "localhost");
    if (header.empty()) {
      SSL_set_fd(ssl.get(), fd);
    } else {
      // The ClientHello goes to memory first (and the reply is awaited from
      // an empty one), so it can leave in one send with the header.
      auto* in = BIO_new(BIO_s_mem());
      auto* out = BIO_new(BIO_s_mem());
      BIO_set_mem_eof_return(in, -1);
      SSL_set_bio(ssl.get(), in, out);
      BOOST_TEST_REQUIRE(SSL_connect(ssl.get()) == -1);
      char* hello = nullptr;
      auto n = BIO_get_mem_data(out, &hello);
      BOOST_TEST_REQUIRE(n > 0);
      auto wire = header + std::string(hello, static_cast<std::size_t>(n));
      BOOST_TEST_REQUIRE(::send(fd, wire.data(), wire.size(), MSG_NOSIGNAL) ==
                         static_cast<ssize_t>(wire.size()));
      SSL_set0_rbio(ssl.get(), BIO_new_socket(fd, BIO_NOCLOSE));
      SSL_set0_wbio(ssl.get(), BIO_new_socket(fd, BIO_NOCLOSE));
    }
    BOOST_TEST_REQUIRE(SSL_connect(ssl.get()) == 1,
                       "TLS handshake after the PROXY header failed");
  }

  std::string echo(const std::string& data) {
    BOOST_TEST_REQUIRE(
        SSL_write(ssl.get(), data.data(), static_cast<int>(data.size())) ==
        static_cast<int>(data.size()));
    std::string got;
    char buf[4096];
    while (got.size() < data.size()) {
      auto n = SSL_read(ssl.get(), buf, sizeof(buf));
      BOOST_TEST_REQUIRE(n > 0, "TLS read failed");
      got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(proxy_tests, proxy_fixture)

BOOST_AUTO_TEST_CASE(proxy_protocol_names_parse_back) {
  for (auto x : {proxy_protocol::off, proxy_protocol::v1, proxy_protocol::v2,
                 proxy_protocol::any}) {
    proxy_protocol y = proxy_protocol::off;
    BOOST_TEST(from_string(to_string(x), y));
    BOOST_TEST((x == y));
  }
  proxy_protocol y = proxy_protocol::v1;
  BOOST_TEST(!from_string("v3", y));
  BOOST_TEST(!from_string("", y));
  BOOST_TEST((y == proxy_protocol::v1));
}

BOOST_AUTO_TEST_CASE(bad_proxy_settings_name_the_field) {
  listener_config lc;
  lc.proxy_protocol = proxy_protocol::any;
  BOOST_TEST(!lc.validate());
  lc.proxy_header_timeout = 0ms;
  auto err = lc.validate();
  BOOST_TEST((kind(err) == errc::invalid_config));
  BOOST_TEST(contains(describe(err), "listener.proxy_header_timeout"));
  lc.proxy_header_timeout = 1s;
  lc.max_connections_per_ip = 5;
  err = lc.validate();
  BOOST_TEST(contains(describe(err), "listener.max_connections_per_ip"),
             describe(err));
  lc.proxy_protocol = proxy_protocol::off;
  BOOST_TEST(!lc.validate());
}

BOOST_AUTO_TEST_CASE(v1_header_names_the_remote_and_local_address) {
  auto l = listen_proxy(proxy_protocol::v1);
  auto s = connect_blocking(l.port());
  BOOST_TEST(exchange(s, v1_tcp4 + "ping", 4) == "ping");
  auto [rhost, rport, lhost, lport] = seen();
  BOOST_TEST(rhost == "192.0.2.1");
  BOOST_TEST(rport == 51000u);
  BOOST_TEST(lhost == "198.51.100.7");
  BOOST_TEST(lport == 443u);
  auto ev = await_event(observer, connection_event::opened);
  BOOST_TEST_REQUIRE(ev.has_value());
  BOOST_TEST(ev->peer == "192.0.2.1:51000");
}

BOOST_AUTO_TEST_CASE(v2_headers_over_ipv4_and_ipv6_are_taken) {
  auto l = listen_proxy(proxy_protocol::v2);
  auto s4 = connect_blocking(l.port());
  BOOST_TEST(exchange(s4, v2_inet() + "four", 4) == "four");
  auto [rhost, rport, lhost, lport] = seen();
  BOOST_TEST(rhost == "192.0.2.1");
  BOOST_TEST(rport == 51000u);
  BOOST_TEST(lhost == "198.51.100.7");
  BOOST_TEST(lport == 443u);
  auto s6 = connect_blocking(l.port());
  BOOST_TEST(exchange(s6, v2_inet6() + "six", 3) == "six");
  std::tie(rhost, rport, lhost, lport) = seen();
  BOOST_TEST(rhost == "2001:db8::1");
  BOOST_TEST(rport == 51000u);
  BOOST_TEST(lhost == "2001:db8::2");
  BOOST_TEST(lport == 443u);
}

BOOST_AUTO_TEST_CASE(local_and_unknown_keep_the_socket_addresses) {
  auto l = listen_proxy(proxy_protocol::any);
  for (auto header : {"PROXY UNKNOWN\r\n"s, v2_sig + "\x20\x00\x00\x00"s}) {
    auto s = connect_blocking(l.port());
    BOOST_TEST(exchange(s, header + "hi", 2) == "hi");
    auto [rhost, rport, lhost, lport] = seen();
    BOOST_TEST(rhost == "127.0.0.1");
    BOOST_TEST(rport == s.local_port());
    BOOST_TEST(lhost == "127.0.0.1");
    BOOST_TEST(lport == l.port());
  }
}

BOOST_AUTO_TEST_CASE(data_behind_the_header_is_not_lost) {
  auto l = listen_proxy(proxy_protocol::any);
  // One write: the header's reads take the first bytes of the payload with
  // it, the rest comes by the ordinary reads, and the order must hold.
  auto payload = pattern(0, 300 * 1024);
  for (auto& header : {v1_tcp4, v2_inet6()}) {
    auto s = connect_blocking(l.port());
    auto got = exchange(s, header + payload, payload.size());
    BOOST_TEST(got.size() == payload.size());
    BOOST_TEST((got == payload));
    std::ignore = seen();
  }
  // A header in pieces, and a byte of data right behind the last piece.
  auto s = connect_blocking(l.port());
  int on = 1;
  ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  auto header = v2_inet();
  for (std::size_t i = 0; i + 1 < header.size(); i += 5)
    BOOST_TEST(::send(s.fd(), header.data() + i,
                      std::min<std::size_t>(5, header.size() - 1 - i),
                      MSG_NOSIGNAL) > 0);
  BOOST_TEST(exchange(s, header.substr(header.size() - 1) + "!", 1) == "!");
  BOOST_TEST(std::get<0>(seen()) == "192.0.2.1");
}

BOOST_AUTO_TEST_CASE(bad_header_closes_before_any_actor) {
  auto l = listen_proxy(proxy_protocol::v1);
  struct {
    std::string sent;
    std::string cause;
  } cases[] = {
      {"GET / HTTP/1.1\r\n\r\n", "bad v1 signature"},
      {v2_inet(), "bad v1 signature"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\nx",
       "v1 destination port '99999'"},
      {"PROXY TCP4 " + std::string(200, '1'), "no CRLF within 107 bytes"},
  };
  for (auto& c : cases) {
    auto s = connect_blocking(l.port());
    auto res = pump(s, c.sent, static_cast<std::size_t>(-1));
    BOOST_TEST((res.eof || res.error == ECONNRESET));
    BOOST_TEST(res.in.empty());
    auto ev = failure_event(observer);
    BOOST_TEST((kind(ev.reason) == errc::proxy_header_invalid),
               describe(ev.reason));
    BOOST_TEST(contains(describe(ev.reason), c.cause), describe(ev.reason));
    // The context names the peer as the socket shows it.
    BOOST_TEST(contains(describe(ev.reason),
                        "127.0.0.1:" + std::to_string(s.local_port())),
               describe(ev.reason));
  }
  // A peer that closes without a header.
  {
    auto s = connect_blocking(l.port());
    s.close();
    auto ev = failure_event(observer);
    BOOST_TEST(contains(describe(ev.reason), "peer closed before sending"),
               describe(ev.reason));
  }
  BOOST_TEST(calls->load() == 0);
  auto st = stats_of(probe, l);
  BOOST_TEST(st.proxy_failed == 5u);
  BOOST_TEST(st.handshake_failed == 0u);
  BOOST_TEST(st.open == 0u);
  // The listener still serves good headers.
  auto s = connect_blocking(l.port());
  BOOST_TEST(exchange(s, v1_tcp4 + "ok", 2) == "ok");
}

BOOST_AUTO_TEST_CASE(slow_header_times_out) {
  listener_config lc;
  lc.proxy_header_timeout = 300ms;
  auto l = listen_proxy(proxy_protocol::any, lc);
  auto t0 = steady::now();
  auto s = connect_blocking(l.port());
  auto res = pump(s, "PROXY TCP4 192.0", static_cast<std::size_t>(-1));
  auto elapsed = steady::now() - t0;
  BOOST_TEST((res.eof || res.error == ECONNRESET));
  BOOST_TEST(!res.timed_out);
  BOOST_TEST(elapsed >= 300ms);
  BOOST_TEST(elapsed < 5s);
  auto ev = failure_event(observer);
  BOOST_TEST((kind(ev.reason) == errc::proxy_header_timeout),
             describe(ev.reason));
  BOOST_TEST(contains(describe(ev.reason), "within 300ms (16 bytes received)"),
             describe(ev.reason));
  BOOST_TEST(calls->load() == 0);
  BOOST_TEST(stats_of(probe, l).proxy_failed == 1u);
}

BOOST_AUTO_TEST_CASE(
    stopping_the_listener_closes_connections_awaiting_a_header) {
  auto l = listen_proxy(proxy_protocol::v2);
  auto s = connect_blocking(l.port());
  auto quiet = connect_blocking(l.port()); // sends nothing at all
  // Half a header: the connection now waits in the header phase.
  BOOST_TEST(::send(s.fd(), v2_sig.data(), 6, MSG_NOSIGNAL) == 6);
  // Both accepted before the stop: one still in the backlog would be reset
  // by the kernel instead, unseen by the listener.
  auto deadline = steady::now() + 10s;
  while (stats_of(probe, l).accepted < 2 && steady::now() < deadline)
    continue;
  BOOST_TEST_REQUIRE(stats_of(probe, l).accepted == 2u);
  probe->request(l.handle(), 10s, immediate_stop_atom::value)
      .receive([] {}, [](caf::error& err) { BOOST_FAIL(describe(err)); });
  auto res = read_to_end(s);
  BOOST_TEST((res.eof || res.error == ECONNRESET));
  BOOST_TEST(calls->load() == 0);
  // Counted as what it was: a connection that never got past its header.
  for (int i = 0; i < 2; ++i) {
    auto ev = failure_event(observer);
    BOOST_TEST((kind(ev.reason) == errc::shutdown), describe(ev.reason));
  }
  auto st = stats_of(probe, l);
  BOOST_TEST(st.proxy_failed == 2u);
  BOOST_TEST(st.handshake_failed == 0u);
}

BOOST_AUTO_TEST_CASE(runtime_shutdown_closes_connections_awaiting_a_header) {
  auto l = listen_proxy(proxy_protocol::any); // 5 s header timeout
  auto s = connect_blocking(l.port());
  BOOST_TEST(::send(s.fd(), "PROX", 4, MSG_NOSIGNAL) == 4);
  // Accepted (and so in the header phase) before the runtime goes.
  auto deadline = steady::now() + 10s;
  while (stats_of(probe, l).accepted == 0 && steady::now() < deadline)
    continue;
  BOOST_TEST_REQUIRE(stats_of(probe, l).accepted == 1u);
  auto t0 = steady::now();
  rt.reset(); // closes every connection, gracefully
  auto res = read_to_end(s);
  BOOST_TEST((res.eof || res.error == ECONNRESET));
  BOOST_TEST((steady::now() - t0 < 4s)); // the shutdown, not the timeout
  BOOST_TEST(calls->load() == 0);
}

BOOST_AUTO_TEST_CASE(tls_follows_the_header) {
  listener_config lc;
  lc.tls = server_tls();
  auto l = listen_proxy(proxy_protocol::any, lc);
  // The header alone first, then the handshake.
  {
    auto s = connect_blocking(l.port());
    BOOST_TEST_REQUIRE(
        ::send(s.fd(), v1_tcp4.data(), v1_tcp4.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(v1_tcp4.size()));
    tls_after_header tls{s.fd(), ""};
    BOOST_TEST(tls.echo("secret") == "secret");
    BOOST_TEST(std::get<0>(seen()) == "192.0.2.1");
  }
  // The header and the ClientHello in one write.
  {
    auto s = connect_blocking(l.port());
    tls_after_header tls{s.fd(), v2_inet6()};
    BOOST_TEST(tls.echo("together") == "together");
    BOOST_TEST(std::get<0>(seen()) == "2001:db8::1");
  }
  // A TLS client that sends no header is refused before any handshake.
  {
    auto s = connect_blocking(l.port());
    std::unique_ptr<SSL_CTX, ssl_ctx_free> ctx{
        SSL_CTX_new(TLS_client_method())};
    std::unique_ptr<SSL, ssl_free> ssl{SSL_new(ctx.get())};
    SSL_set_fd(ssl.get(), s.fd());
    BOOST_TEST(SSL_connect(ssl.get()) != 1);
    auto ev = failure_event(observer);
    BOOST_TEST(contains(describe(ev.reason), "neither a v1 nor a v2"),
               describe(ev.reason));
  }
  auto st = stats_of(probe, l);
  BOOST_TEST(st.proxy_failed == 1u);
  BOOST_TEST(st.handshake_failed == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
