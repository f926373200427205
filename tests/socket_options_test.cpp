// Socket options from connection_config and listener_config, read back from
// the kernel on the server's own descriptor.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;
using namespace tcpactor::test::posix;

namespace {

int get(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof(value);
  BOOST_TEST_REQUIRE(::getsockopt(fd, level, name, &value, &len) == 0);
  return value;
}

/// The server's descriptor of a connection from `s` to `port`, once the
/// listener has accepted it (an echo proves that).
int server_fd(uint16_t port, const raw_socket& s) {
  BOOST_TEST_REQUIRE(pump(s, "x", 1).in == "x");
  auto fd = find_server_fd(port, s.local_port());
  BOOST_TEST_REQUIRE(fd >= 0);
  return fd;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(socket_options_tests, runtime_fixture)

BOOST_AUTO_TEST_CASE(accepted_sockets_get_keepalive_user_timeout_buffers) {
  listener_config lc;
  lc.connection.keepalive = true;
  lc.connection.keepalive_idle = std::chrono::seconds{30};
  lc.connection.keepalive_interval = std::chrono::seconds{5};
  lc.connection.keepalive_count = 3;
  lc.connection.user_timeout = std::chrono::milliseconds{2500};
  lc.connection.receive_buffer = 256 * 1024;
  lc.connection.send_buffer = 128 * 1024;
  auto l = listen(echo_handler(), lc);
  auto s = connect_blocking(l.port());
  auto fd = server_fd(l.port(), s);
  BOOST_TEST(get(fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
  BOOST_TEST(get(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 30);
  BOOST_TEST(get(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 5);
  BOOST_TEST(get(fd, IPPROTO_TCP, TCP_KEEPCNT) == 3);
  BOOST_TEST(get(fd, IPPROTO_TCP, TCP_USER_TIMEOUT) == 2500);
  BOOST_TEST(get(fd, IPPROTO_TCP, TCP_NODELAY) == 1);
  // Linux doubles what it is given, for its own bookkeeping.
  BOOST_TEST(get(fd, SOL_SOCKET, SO_RCVBUF) == 2 * 256 * 1024);
  BOOST_TEST(get(fd, SOL_SOCKET, SO_SNDBUF) == 2 * 128 * 1024);
}

BOOST_AUTO_TEST_CASE(defaults_leave_the_kernel_alone) {
  auto l = listen(echo_handler());
  auto s = connect_blocking(l.port());
  auto fd = server_fd(l.port(), s);
  BOOST_TEST(get(fd, SOL_SOCKET, SO_KEEPALIVE) == 0);
  BOOST_TEST(get(fd, IPPROTO_TCP, TCP_USER_TIMEOUT) == 0);
}

BOOST_AUTO_TEST_CASE(client_sockets_get_them_too) {
  // The client's socket is ours as well: find it by its two ports.
  auto l = listen(echo_handler());
  client_config cc;
  cc.connection.keepalive = true;
  cc.connection.keepalive_idle = std::chrono::seconds{42};
  cc.connection.send_buffer = 64 * 1024;
  auto c = connect(l.port(), cc);
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"hi"}));
  BOOST_TEST(read_exactly(c, 2) == "hi");
  int found = -1;
  if (auto* dir = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(dir)) {
      int fd = std::atoi(e->d_name);
      sockaddr_in peer{};
      socklen_t len = sizeof(peer);
      if (e->d_name[0] != '.' &&
          ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
          peer.sin_family == AF_INET && ntohs(peer.sin_port) == l.port())
        found = fd;
    }
    ::closedir(dir);
  }
  BOOST_TEST_REQUIRE(found >= 0);
  BOOST_TEST(get(found, SOL_SOCKET, SO_KEEPALIVE) == 1);
  BOOST_TEST(get(found, IPPROTO_TCP, TCP_KEEPIDLE) == 42);
  BOOST_TEST(get(found, SOL_SOCKET, SO_SNDBUF) == 2 * 64 * 1024);
}

BOOST_AUTO_TEST_CASE(ipv6_only_listener_refuses_ipv4_clients) {
  // Only "::" shows the difference (Linux makes a socket bound to "::1"
  // IPv6-only whatever it was told); the only client is on loopback.
  for (bool only : {false, true}) {
    listener_config lc;
    lc.host = "::";
    lc.ipv6_only = only;
    auto l = listen(echo_handler(), lc);
    raw_socket s{::socket(AF_INET, SOCK_STREAM, 0)};
    auto sa = loopback(l.port());
    auto rc = ::connect(s.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    BOOST_TEST((rc == 0) == !only, "ipv6_only=" << only << " rc=" << rc);
    if (rc == 0)
      BOOST_TEST(pump(s, "v4", 2).in == "v4");
  }
}

BOOST_AUTO_TEST_CASE(out_of_range_values_name_the_field) {
  listener_config lc;
  lc.connection.keepalive_idle = std::chrono::seconds{40000};
  auto err = lc.validate();
  BOOST_TEST(contains(describe(err), "listener.connection.keepalive_idle"),
             describe(err));
  lc = {};
  lc.connection.keepalive_count = 200;
  BOOST_TEST(
      contains(describe(lc.validate()), "listener.connection.keepalive_count"));
  client_config cc;
  cc.host = "127.0.0.1";
  cc.port = 1;
  cc.connection.receive_buffer = std::size_t{2} << 30;
  BOOST_TEST(
      contains(describe(cc.validate()), "client.connection.receive_buffer"));
}

BOOST_AUTO_TEST_SUITE_END()
