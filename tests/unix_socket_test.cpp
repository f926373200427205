#include "tcpactor/listener.hpp" // first: proves the header stands alone
#include "tcpactor/reconnecting_client.hpp"

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "fixtures.hpp"
#include "tls_certs.hpp"

namespace tcpactor::test {

namespace {

/// A fresh directory for socket files, removed with everything in it.
struct scratch_dir {
  scratch_dir() {
    char tmpl[] = "/tmp/tcpactor-unix.XXXXXX";
    BOOST_TEST_REQUIRE(::mkdtemp(tmpl) != nullptr, std::strerror(errno));
    path = tmpl;
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
  std::string path;
};

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_socket(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

/// A raw AF_UNIX socket bound to `path` outside the library; listening
/// unless `listen` is false. Closing it leaves the file behind, as a crashed
/// server would.
class raw_unix_socket {
public:
  raw_unix_socket(const std::string& path, bool listen) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_TEST_REQUIRE(fd_ >= 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());
    BOOST_TEST_REQUIRE(
        ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0,
        "bind " << path << ": " << std::strerror(errno));
    if (listen)
      BOOST_TEST_REQUIRE(::listen(fd_, 8) == 0);
  }
  ~raw_unix_socket() { close(); }
  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }

private:
  int fd_ = -1;
};

/// Connects a raw AF_UNIX client to `path`: 0 or the errno.
int raw_connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

/// Greets each connection with "<remote_host> <remote_port>\n", then
/// echoes.
connect_handler greeting_echo() {
  return [](caf::event_based_actor*,
            const caller& conn) -> caf::expected<service> {
    conn.write(bytes{conn.remote_host() + " " +
                     std::to_string(conn.remote_port()) + "\n"});
    return echo_service(conn);
  };
}

struct unix_fixture : runtime_fixture {
  listener listen_on(const std::string& path, listener_config lc = {},
                     connect_handler h = echo_handler()) {
    lc.unix_path = path;
    auto res = spawn_listener(*rt, lc, std::move(h));
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    return *res;
  }

  blocking_client connect_to(const std::string& path, client_config cc = {}) {
    cc.unix_path = path;
    auto res = blocking_client::connect(*rt, cc);
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    return std::move(*res);
  }

  caf::error listen_error(const std::string& path, listener_config lc = {}) {
    lc.unix_path = path;
    auto res = spawn_listener(*rt, lc, echo_handler());
    BOOST_TEST_REQUIRE(!res, "listening on " << path << " should fail");
    return res.error();
  }

  void stop(const listener& l, bool immediate) {
    caf::scoped_actor self{sys};
    auto req = immediate
                   ? self->request(l.handle(), 10s, immediate_stop_atom::value)
                   : self->request(l.handle(), 10s, graceful_stop_atom::value);
    req.receive(
        [] {},
        [](caf::error& err) { BOOST_FAIL("stop failed: " << describe(err)); });
  }

  scratch_dir dir;
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(unix_socket_tests, unix_fixture)

BOOST_AUTO_TEST_CASE(echo_over_a_path_reports_the_path_as_peer) {
  auto path = dir.file("echo.sock");
  // TCP-only options must be skipped on a Unix socket, not fail it.
  listener_config lc;
  lc.connection.tcp_nodelay = true;
  lc.connection.keepalive = true;
  lc.connection.keepalive_idle = std::chrono::seconds{5};
  lc.connection.user_timeout = 1000ms;
  lc.max_connections_per_ip = 1;
  auto l = listen_on(path, lc, greeting_echo());
  BOOST_TEST(l.host() == path);
  BOOST_TEST(l.port() == 0u);
  BOOST_TEST(is_socket(path));
  client_config cc;
  cc.connection.keepalive = true;
  cc.connection.user_timeout = 1000ms;
  auto c = connect_to(path, cc);
  BOOST_TEST(read_exactly(c, path.size() + 3) == path + " 0\n");
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"hello"}));
  BOOST_TEST(read_exactly(c, 5) == "hello");
  // The per-address limit counts IP addresses: Unix peers share none, so a
  // second client is not refused by max_connections_per_ip = 1.
  auto c2 = connect_to(path);
  BOOST_TEST(read_exactly(c2, path.size() + 3) == path + " 0\n");
}

BOOST_AUTO_TEST_CASE(peer_credentials_name_the_connecting_process) {
  auto path = dir.file("cred.sock");
  auto handler = [](caf::event_based_actor*,
                    const caller& conn) -> caf::expected<service> {
    auto cred = conn.peer_credentials();
    conn.write(bytes{cred ? std::to_string(cred->pid) + " " +
                                std::to_string(cred->uid) + "\n"
                          : std::string{"none\n"}});
    return echo_service(conn);
  };
  auto l = listen_on(path, {}, handler);
  auto c = connect_to(path);
  auto expected =
      std::to_string(::getpid()) + " " + std::to_string(::getuid()) + "\n";
  BOOST_TEST(read_exactly(c, expected.size()) == expected);
  // Over TCP there are none.
  auto tl = listen(handler);
  auto tc = connect(tl.port());
  BOOST_TEST(read_exactly(tc, 5) == "none\n");
}

BOOST_AUTO_TEST_CASE(eight_mib_through_backpressure_come_back_whole) {
  auto path = dir.file("bulk.sock");
  // Small limits, so reading pauses and resumes many times on the way.
  listener_config lc;
  lc.connection.read_chunk = 4096;
  lc.connection.max_unprocessed_bytes = 16 * 1024;
  lc.connection.max_unprocessed_chunks = 4;
  lc.connection.write_high_watermark = 32 * 1024;
  lc.connection.write_low_watermark = 8 * 1024;
  auto l = listen_on(path, lc);
  auto c = connect_to(path);
  std::string payload(8 * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<char>((i * 7919) >> 3);
  std::string echoed;
  // Written in pieces and read in between, so neither side's buffers bound
  // the test.
  const std::size_t piece = 256 * 1024;
  for (std::size_t off = 0; off < payload.size(); off += piece) {
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{payload.substr(off, piece)}));
    echoed += read_exactly(c, piece);
  }
  BOOST_TEST((echoed == payload));
}

BOOST_AUTO_TEST_CASE(framing_half_close_and_idle_timeout_over_a_path) {
  auto path = dir.file("framed.sock");
  {
    listener_config lc;
    lc.connection.framing = *framing_config::parse("length:4");
    auto l = listen_on(path, lc);
    client_config cc;
    cc.connection.framing = lc.connection.framing;
    auto c = connect_to(path, cc);
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"one frame"}));
    auto frame = c.read_frame(10s);
    BOOST_TEST_REQUIRE(static_cast<bool>(frame), why(frame));
    BOOST_TEST(frame->to_string() == "one frame");
    stop(l, true);
  }
  {
    // Half-close: our FIN, then the echo of what came before, then theirs.
    listener_config lc;
    lc.connection.half_close = true;
    auto l = listen_on(path, lc,
                       [](caf::event_based_actor*,
                          const caller& conn) -> caf::expected<service> {
                         return echo_service(conn); // closes after our FIN
                       });
    auto c = connect_to(path);
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"bye"}));
    BOOST_TEST_REQUIRE(!c.shutdown_write());
    BOOST_TEST(read_exactly(c, 3) == "bye");
    auto err = read_until_error(c);
    BOOST_TEST(kind(err) == errc::peer_closed, describe(err));
    stop(l, true);
  }
  {
    listener_config lc;
    lc.connection.idle_timeout = 100ms;
    auto l = listen_on(path, lc);
    auto c = connect_to(path);
    auto err = read_until_error(c);
    BOOST_TEST(kind(err) == errc::peer_closed, describe(err));
  }
}

BOOST_AUTO_TEST_CASE(tls_over_a_path) {
  auto path = dir.file("tls.sock");
  listener_config lc;
  lc.tls = server_tls();
  auto l = listen_on(path, lc);
  client_config cc;
  cc.tls = client_tls();
  auto c = connect_to(path, cc);
  BOOST_TEST(!c.tls().version.empty());
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"secret"}));
  BOOST_TEST(read_exactly(c, 6) == "secret");
  // No host name to verify against: the client must name one.
  cc.tls.server_name.clear();
  cc.unix_path = path;
  auto err = cc.validate();
  BOOST_TEST(kind(err) == errc::invalid_config);
  BOOST_TEST(contains(describe(err), "client.tls.server_name"), describe(err));
  // A name the certificate does not carry fails the handshake.
  cc.tls.server_name = "not-the-server.example";
  auto bad = blocking_client::connect(*rt, cc);
  BOOST_TEST_REQUIRE(!bad);
  BOOST_TEST(kind(bad.error()) == errc::tls_handshake_failed,
             describe(bad.error()));
}

BOOST_AUTO_TEST_CASE(actor_client_over_a_path) {
  auto path = dir.file("actor.sock");
  auto l = listen_on(path);
  caf::scoped_actor owner{sys};
  client_config cc;
  cc.unix_path = path;
  auto hdl = spawn_client(*rt, cc, caf::actor{owner});
  BOOST_TEST_REQUIRE(static_cast<bool>(hdl), why(hdl));
  bool connected = false;
  owner->receive([&](connected_atom) { connected = true; },
                 caf::after(10s) >> [] {});
  BOOST_TEST_REQUIRE(connected);
  caf::anon_send(*hdl, write_atom::value, bytes{"x"});
  BOOST_TEST(ping_pong_x(owner, 50).size() == 50u);
  caf::anon_send(*hdl, close_atom::value);
  bool closed = false;
  while (!closed)
    owner->receive([&](closed_atom) { closed = true; },
                   [](error_atom, caf::error&) {},
                   caf::after(10s) >> [&] { BOOST_FAIL("no closed"); });
}

BOOST_AUTO_TEST_CASE(reconnecting_client_over_a_path) {
  auto path = dir.file("again.sock");
  auto l = listen_on(path);
  caf::scoped_actor owner{sys};
  reconnecting_client_config rc;
  rc.client.unix_path = path;
  rc.initial_backoff = 20ms;
  rc.max_backoff = 100ms;
  auto hdl = spawn_reconnecting_client(*rt, rc, caf::actor{owner});
  BOOST_TEST_REQUIRE(static_cast<bool>(hdl), why(hdl));
  std::vector<caf::error> drops;
  auto await_connected = [&] {
    std::string peer;
    bool done = false;
    while (!done)
      owner->receive(
          [&](connected_atom, uint32_t, std::string& p) {
            peer = p;
            done = true;
          },
          [&](disconnected_atom, uint32_t, caf::error& err) {
            drops.push_back(std::move(err));
          },
          caf::after(10s) >> [&] { BOOST_FAIL("never connected"); });
    return peer;
  };
  BOOST_TEST(await_connected() == path);
  // The listener goes, and its file with it: attempts fail until it is back.
  stop(l, true);
  BOOST_TEST(!exists(path));
  while (drops.size() < 2)
    owner->receive([&](disconnected_atom, uint32_t,
                       caf::error& err) { drops.push_back(std::move(err)); },
                   caf::after(10s) >> [] { BOOST_FAIL("no disconnect"); });
  BOOST_TEST(kind(drops.back()) == errc::connect_failed,
             describe(drops.back()));
  BOOST_TEST(contains(describe(drops.back()), path), describe(drops.back()));
  owner->request(l.handle(), 10s, start_atom::value)
      .receive([](uint16_t) {},
               [](caf::error& err) {
                 BOOST_FAIL("restart failed: " << describe(err));
               });
  BOOST_TEST(await_connected() == path);
  caf::anon_send(*hdl, write_atom::value, bytes{"back"});
  std::string seen;
  while (seen.size() < 4)
    owner->receive(
        [&](bytes& chunk) -> bytes {
          seen += chunk.to_string();
          return bytes{};
        },
        caf::after(10s) >> [] { BOOST_FAIL("no echo"); });
  BOOST_TEST(seen == "back");
  caf::anon_send(*hdl, close_atom::value);
  bool closed = false;
  while (!closed)
    owner->receive([&](closed_atom) { closed = true; },
                   caf::after(10s) >> [] { BOOST_FAIL("no closed"); });
}

BOOST_AUTO_TEST_CASE(abstract_socket_leaves_no_file) {
  auto name = "@tcpactor-test-" + std::to_string(::getpid());
  auto l = listen_on(name, {}, greeting_echo());
  BOOST_TEST(l.host() == name);
  auto c = connect_to(name);
  BOOST_TEST(read_exactly(c, name.size() + 3) == name + " 0\n");
  // Taken while it listens.
  auto err = listen_error(name);
  BOOST_TEST(kind(err) == errc::bind_failed, describe(err));
  BOOST_TEST(contains(describe(err), "address in use"), describe(err));
}

BOOST_AUTO_TEST_CASE(stale_socket_file_is_replaced) {
  auto path = dir.file("stale.sock");
  { raw_unix_socket crashed{path, true}; }
  BOOST_TEST_REQUIRE(is_socket(path));
  BOOST_TEST_REQUIRE(raw_connect(path) == ECONNREFUSED);
  auto l = listen_on(path);
  auto c = connect_to(path);
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"fresh"}));
  BOOST_TEST(read_exactly(c, 5) == "fresh");
}

BOOST_AUTO_TEST_CASE(live_socket_is_address_in_use_and_kept) {
  auto path = dir.file("live.sock");
  raw_unix_socket other{path, true};
  auto err = listen_error(path);
  BOOST_TEST(kind(err) == errc::bind_failed, describe(err));
  BOOST_TEST(contains(describe(err), path), describe(err));
  BOOST_TEST(contains(describe(err), "address in use"), describe(err));
  // The other process still owns its socket.
  BOOST_TEST(raw_connect(path) == 0);
  // The same for one of ours.
  auto path2 = dir.file("ours.sock");
  auto l = listen_on(path2);
  auto err2 = listen_error(path2);
  BOOST_TEST(contains(describe(err2), "address in use"), describe(err2));
  auto c = connect_to(path2);
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"still"}));
  BOOST_TEST(read_exactly(c, 5) == "still");
}

BOOST_AUTO_TEST_CASE(a_file_that_is_no_socket_is_refused_and_untouched) {
  auto path = dir.file("data.txt");
  {
    std::ofstream out{path};
    out << "precious";
  }
  auto err = listen_error(path);
  BOOST_TEST(kind(err) == errc::bind_failed, describe(err));
  BOOST_TEST(contains(describe(err), path), describe(err));
  BOOST_TEST(contains(describe(err), "not a socket"), describe(err));
  std::ifstream in{path};
  std::string content;
  std::getline(in, content);
  BOOST_TEST(content == "precious");
  // A directory is no socket either.
  auto sub = dir.file("subdir");
  std::filesystem::create_directory(sub);
  auto err2 = listen_error(sub);
  BOOST_TEST(contains(describe(err2), "not a socket"), describe(err2));
  BOOST_TEST(std::filesystem::is_directory(sub));
}

BOOST_AUTO_TEST_CASE(too_long_path_is_invalid_config_naming_it) {
  auto path = "/tmp/" + std::string(103, 'p'); // 108 bytes
  listener_config lc;
  lc.unix_path = path;
  auto err = lc.validate();
  BOOST_TEST(kind(err) == errc::invalid_config, describe(err));
  BOOST_TEST(contains(describe(err), "listener.unix_path"), describe(err));
  BOOST_TEST(contains(describe(err), path), describe(err));
  BOOST_TEST(contains(describe(err), "107"), describe(err));
  auto res = spawn_listener(*rt, lc, echo_handler());
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST(kind(res.error()) == errc::invalid_config);
  client_config cc;
  cc.unix_path = path;
  auto cerr = cc.validate();
  BOOST_TEST(contains(describe(cerr), "client.unix_path"), describe(cerr));
  // 107 bytes fit (the NUL makes 108).
  lc.unix_path.pop_back();
  BOOST_TEST(!lc.validate(), describe(lc.validate()));
  // Modes beyond 07777, a mode without a path, and reuse_port are refused.
  listener_config bad;
  bad.unix_path = dir.file("x.sock");
  bad.unix_mode = 010000;
  BOOST_TEST(contains(describe(bad.validate()), "listener.unix_mode"));
  bad.unix_mode = 0;
  bad.reuse_port = true;
  BOOST_TEST(contains(describe(bad.validate()), "listener.reuse_port"));
  listener_config no_path;
  no_path.unix_mode = 0600;
  BOOST_TEST(contains(describe(no_path.validate()), "listener.unix_mode"));
}

BOOST_AUTO_TEST_CASE(unix_mode_sets_the_file_permissions) {
  for (uint32_t mode : {0600u, 0660u, 0666u}) {
    auto path = dir.file("mode" + std::to_string(mode) + ".sock");
    listener_config lc;
    lc.unix_mode = mode;
    auto l = listen_on(path, lc);
    struct stat st;
    BOOST_TEST_REQUIRE(::stat(path.c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 07777) == mode,
               "mode " << std::oct << (st.st_mode & 07777) << " not " << mode);
    BOOST_TEST(S_ISSOCK(st.st_mode));
  }
}

BOOST_AUTO_TEST_CASE(file_removed_on_stop_and_back_on_start) {
  auto path = dir.file("stop.sock");
  auto l = listen_on(path);
  {
    auto c = connect_to(path);
    stop(l, false);
    BOOST_TEST(!exists(path));
    // A graceful stop leaves the open connection serving.
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"open"}));
    BOOST_TEST(read_exactly(c, 4) == "open");
  }
  caf::scoped_actor self{sys};
  self->request(l.handle(), 10s, start_atom::value)
      .receive([](uint16_t port) { BOOST_TEST(port == 0u); },
               [](caf::error& err) {
                 BOOST_FAIL("restart failed: " << describe(err));
               });
  BOOST_TEST(is_socket(path));
  auto c = connect_to(path);
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"again"}));
  BOOST_TEST(read_exactly(c, 5) == "again");
  stop(l, true);
  BOOST_TEST(!exists(path));
  // A file that replaced ours meanwhile is not ours to remove.
  auto l2 = listen_on(path);
  BOOST_TEST_REQUIRE(::unlink(path.c_str()) == 0);
  {
    std::ofstream out{path};
    out << "someone else's";
  }
  stop(l2, true);
  BOOST_TEST(exists(path));
}

BOOST_AUTO_TEST_CASE(connect_errors_name_the_path) {
  auto missing = dir.file("missing.sock");
  client_config cc;
  cc.unix_path = missing;
  auto res = blocking_client::connect(*rt, cc);
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST(kind(res.error()) == errc::connect_failed, describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), missing), describe(res.error()));
  auto stale = dir.file("stale.sock");
  { raw_unix_socket crashed{stale, true}; }
  cc.unix_path = stale;
  res = blocking_client::connect(*rt, cc);
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST(kind(res.error()) == errc::connect_failed, describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), "refused"), describe(res.error()));
}

BOOST_AUTO_TEST_CASE(full_backlog_times_out_the_connect) {
  // Nobody accepts and the backlog is full: a non-blocking Unix connect
  // says EAGAIN, and the client retries until connect_timeout.
  auto path = dir.file("full.sock");
  raw_unix_socket deaf{path, false};
  BOOST_TEST_REQUIRE(::listen(deaf.fd(), 0) == 0);
  std::vector<int> queued;
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0)
      queued.push_back(fd);
    else
      ::close(fd);
  }
  client_config cc;
  cc.unix_path = path;
  cc.connect_timeout = 200ms;
  auto res = blocking_client::connect(*rt, cc);
  for (auto fd : queued)
    ::close(fd);
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST(kind(res.error()) == errc::connect_timeout, describe(res.error()));
  BOOST_TEST(contains(describe(res.error()), path), describe(res.error()));
}

BOOST_AUTO_TEST_SUITE_END()

} // namespace tcpactor::test
