// TLS end to end: our listener and clients over real loopback sockets with
// certificates made at test time, plus OpenSSL's own s_server as a peer no
// one here wrote.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "fixtures.hpp"
#include "tls_certs.hpp"

using namespace tcpactor;
using namespace tcpactor::test;

namespace {

const tls_certs& certs() {
  return shared_certs();
}

/// A child process with stdout and stderr in one pipe, killed on
/// destruction.
class child_process {
public:
  explicit child_process(std::vector<std::string> argv) {
    int out[2];
    int in[2];
    BOOST_TEST_REQUIRE(::pipe(out) == 0);
    BOOST_TEST_REQUIRE(::pipe(in) == 0);
    pid_ = ::fork();
    BOOST_TEST_REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::close(in[1]);
      ::close(out[0]);
      std::vector<char*> args;
      for (auto& x : argv)
        args.push_back(x.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    out_ = out[0];
    in_ = in[1];
  }

  ~child_process() {
    kill(SIGKILL);
    ::close(out_);
    ::close(in_);
  }

  void kill(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  /// Reads output until it contains `what`; returns everything read so far
  /// (empty if `what` did not show within `timeout`).
  std::string await_output(const std::string& what,
                           std::chrono::milliseconds timeout = 10s) {
    auto deadline = posix::steady::now() + timeout;
    while (output_.find(what) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - posix::steady::now());
      if (left.count() <= 0)
        return {};
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        continue;
      char buf[4096];
      auto n = ::read(out_, buf, sizeof(buf));
      if (n <= 0)
        return {};
      output_.append(buf, static_cast<std::size_t>(n));
    }
    return output_;
  }

private:
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  std::string output_;
};

/// Starts `openssl s_server` in reverse-echo mode on a kernel-chosen port of
/// 127.0.0.1 and returns that port.
uint16_t start_s_server(std::unique_ptr<child_process>& proc,
                        std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{
      "openssl", "s_server",          "-accept", "127.0.0.1:0",
      "-cert",   certs().server_cert, "-key",    certs().server_key,
      "-rev",    "-naccept",          "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  proc = std::make_unique<child_process>(argv);
  auto out = proc->await_output("ACCEPT");
  BOOST_TEST_REQUIRE(!out.empty(), "openssl s_server did not start");
  auto pos = out.find("ACCEPT");
  auto eol = out.find('\n', pos);
  while (eol == std::string::npos) {
    out = proc->await_output("\n" /* rest of the line */);
    eol = out.find('\n', pos);
  }
  auto line = out.substr(pos, eol - pos);
  return static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
}

struct tls_fixture : recording_fixture {
  caf::expected<blocking_client> try_connect(uint16_t port, tls_config tls,
                                             client_config cc = {}) {
    cc.host = "127.0.0.1";
    cc.port = port;
    cc.tls = std::move(tls);
    return blocking_client::connect(*rt, cc);
  }

  blocking_client connect_tls(uint16_t port, tls_config tls = client_tls()) {
    auto res = try_connect(port, std::move(tls));
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    return std::move(*res);
  }

  listener listen_tls(tls_config tls = server_tls(),
                      connect_handler h = echo_handler(),
                      caf::actor observer = {}) {
    listener_config lc;
    lc.tls = std::move(tls);
    return listen(std::move(h), lc, std::move(observer));
  }

  static void echo_once(blocking_client& c, const std::string& msg) {
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{msg}));
    BOOST_TEST(read_exactly(c, msg.size()) == msg);
  }
};

/// A connect handler that reports the connection's TLS info to `sink`,
/// then echoes.
connect_handler info_handler(caf::actor sink) {
  return [sink](caf::event_based_actor* self,
                const caller& conn) -> caf::expected<service> {
    auto& x = conn.tls();
    std::string sans;
    for (auto& san : x.peer_sans)
      sans += san + ";";
    self->send(sink, x.version, x.alpn, x.server_name,
               x.peer_subject + "|" + sans);
    return echo_service();
  };
}

struct server_view {
  std::string version, alpn, server_name, peer;
};

server_view await_info(caf::scoped_actor& self) {
  server_view v;
  bool got = false;
  self->receive(
      [&](std::string& version, std::string& alpn, std::string& sni,
          std::string& peer) {
        v = {version, alpn, sni, peer};
        got = true;
      },
      caf::after(10s) >> [] {});
  BOOST_TEST_REQUIRE(got, "the connect handler never ran");
  return v;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(tls_tests, tls_fixture)

BOOST_AUTO_TEST_CASE(echo_over_tls13_with_info_on_both_sides) {
  auto l = listen_tls(server_tls(), info_handler(sink()));
  auto c = connect_tls(l.port());
  echo_once(c, "hello over TLS");
  BOOST_TEST(c.tls().version == "TLSv1.3");
  BOOST_TEST(!c.tls().cipher.empty());
  BOOST_TEST(contains(c.tls().peer_subject, "CN=localhost"));
  auto v = await_info(self);
  BOOST_TEST(v.version == "TLSv1.3");
  BOOST_TEST(v.server_name == "localhost");
}

BOOST_AUTO_TEST_CASE(echo_over_tls12) {
  auto l = listen_tls();
  auto tls = client_tls();
  tls.max_version = "TLSv1.2";
  auto c = connect_tls(l.port(), tls);
  echo_once(c, "hello over TLS 1.2");
  BOOST_TEST(c.tls().version == "TLSv1.2");
}

BOOST_AUTO_TEST_CASE(two_hundred_concurrent_connections) {
  auto l = listen_tls();
  std::vector<blocking_client> cs;
  for (int i = 0; i < 200; ++i)
    cs.push_back(connect_tls(l.port()));
  for (std::size_t i = 0; i < cs.size(); ++i)
    BOOST_TEST_REQUIRE(!cs[i].write_bytes(bytes{"ping " + std::to_string(i)}));
  for (std::size_t i = 0; i < cs.size(); ++i) {
    auto want = "ping " + std::to_string(i);
    BOOST_TEST(read_exactly(cs[i], want.size()) == want);
  }
}

BOOST_AUTO_TEST_CASE(sixteen_mib_with_checksum) {
  auto l = listen_tls();
  auto c = connect_tls(l.port());
  constexpr std::size_t total = 16 * 1024 * 1024;
  constexpr std::size_t step = 256 * 1024;
  posix::fnv1a sent;
  posix::fnv1a got;
  std::size_t received = 0;
  for (std::size_t off = 0; off < total; off += step) {
    auto data = posix::pattern(off, step);
    sent.add(data.data(), data.size());
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{data}));
    // Read back as much as we sent, so neither side's buffers fill up.
    while (received < off + step) {
      auto chunk = c.read_bytes(10s);
      BOOST_TEST_REQUIRE(static_cast<bool>(chunk), why(chunk));
      got.add(chunk->data(), chunk->size());
      received += chunk->size();
    }
  }
  BOOST_TEST(received == total);
  BOOST_TEST(got.value == sent.value);
}

// A 512-byte read_chunk (the least) stops each round of SSL_read with received
// records left over: the read BIO must keep them, in order, for the next round.
BOOST_AUTO_TEST_CASE(small_read_chunks_keep_what_openssl_left_unread) {
  listener_config lc;
  lc.tls = server_tls();
  lc.connection.read_chunk = 512;
  auto l = listen(echo_handler(), lc);
  auto c = connect_tls(l.port());
  std::string sent;
  for (std::size_t i = 0; i < 40; ++i) {
    auto piece = posix::pattern(i * 997, 997);
    sent += piece;
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{piece}));
  }
  BOOST_TEST(read_exactly(c, sent.size()) == sent);
}

BOOST_AUTO_TEST_CASE(clean_close_sends_close_notify) {
  // The server closes after its reply; the client must see an orderly end,
  // not a truncation.
  auto l = listen_tls(server_tls(),
                      [](caf::event_based_actor*,
                         const caller& conn) -> caf::expected<service> {
                        return service{
                            [conn](const bytes& in) {
                              conn.write(in);
                              conn.close();
                              return bytes{};
                            },
                            [](error_atom, const caf::error&) {},
                            [](closed_atom) {},
                        };
                      });
  auto c = connect_tls(l.port());
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"bye"}));
  BOOST_TEST(read_exactly(c, 3) == "bye");
  auto err = read_until_error(c);
  BOOST_TEST(kind(err) == errc::peer_closed, describe(err));
}

BOOST_AUTO_TEST_CASE(alpn_and_sni) {
  auto tls = server_tls();
  tls.alpn = {"h2", "http/1.1"};
  tls.sni_certificates.push_back(
      {"other.test", certs().other_cert, certs().other_key, ""});
  auto l = listen_tls(tls, info_handler(sink()));
  auto ct = client_tls();
  ct.alpn = {"http/1.1"};
  ct.server_name = "other.test";
  auto c = connect_tls(l.port(), ct);
  BOOST_TEST(c.tls().alpn == "http/1.1");
  BOOST_TEST(contains(c.tls().peer_subject, "CN=other.test"));
  auto v = await_info(self);
  BOOST_TEST(v.alpn == "http/1.1");
  BOOST_TEST(v.server_name == "other.test");
  echo_once(c, "sni");
}

BOOST_AUTO_TEST_CASE(mutual_tls_shows_the_client_subject) {
  auto tls = server_tls();
  tls.verify_client = tls_config::client_auth::require;
  tls.ca_file = certs().ca;
  auto l = listen_tls(tls, info_handler(sink()));
  auto ct = client_tls();
  ct.cert_file = certs().client_cert;
  ct.key_file = certs().client_key;
  auto c = connect_tls(l.port(), ct);
  echo_once(c, "mtls");
  auto v = await_info(self);
  BOOST_TEST(contains(v.peer, "CN=client"), v.peer);
}

BOOST_AUTO_TEST_CASE(mutual_tls_without_client_certificate_fails) {
  auto tls = server_tls();
  tls.verify_client = tls_config::client_auth::require;
  tls.ca_file = certs().ca;
  caf::scoped_actor observer{sys};
  auto l = listen_tls(tls, info_handler(sink()),
                      caf::actor_cast<caf::actor>(observer));
  // In TLS 1.3 the client finishes first and learns of the refusal with
  // its first read; in TLS 1.2 connect fails.
  auto c = try_connect(l.port(), client_tls());
  if (c) {
    (void)c->write_bytes(bytes{"x"});
    auto err = read_until_error(*c);
    BOOST_TEST((kind(err) == errc::tls_failed ||
                kind(err) == errc::tls_handshake_failed),
               describe(err));
  } else {
    BOOST_TEST(kind(c.error()) == errc::tls_handshake_failed);
  }
  auto ev = await_event(observer, connection_event::handshake_failed);
  BOOST_TEST_REQUIRE(ev.has_value());
  BOOST_TEST(contains(describe(ev->reason), "certificate"),
             describe(ev->reason));
  BOOST_TEST(contains(describe(ev->reason), "127.0.0.1:"));
}

BOOST_AUTO_TEST_CASE(request_mode_accepts_clients_without_certificate) {
  auto tls = server_tls();
  tls.verify_client = tls_config::client_auth::request;
  tls.ca_file = certs().ca;
  auto l = listen_tls(tls, info_handler(sink()));
  auto c = connect_tls(l.port());
  echo_once(c, "anonymous");
  BOOST_TEST(await_info(self).peer == "|");
}

BOOST_AUTO_TEST_CASE(
    failed_handshakes_give_typed_errors_and_spare_the_listener) {
  struct scenario {
    const char* name;
    std::string cert;
    std::string key;
    tls_config client;
    const char* cause; // part of OpenSSL's text we expect
  };
  auto plain = client_tls();
  auto old_proto = client_tls();
  old_proto.min_version = "TLSv1";
  old_proto.max_version = "TLSv1.1";
  auto bad_cipher = client_tls();
  bad_cipher.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
  std::vector<scenario> xs{
      {"untrusted", certs().rogue_cert, certs().rogue_key, plain, "verify"},
      {"wrong host", certs().wrong_host_cert, certs().wrong_host_key, plain,
       "verify"},
      {"expired", certs().expired_cert, certs().expired_key, plain, "expired"},
      {"old protocol", certs().server_cert, certs().server_key, old_proto, ""},
      {"no common cipher", certs().server_cert, certs().server_key, bad_cipher,
       ""},
  };
  for (auto& x : xs) {
    BOOST_TEST_CONTEXT(x.name) {
      auto tls = server_tls();
      tls.cert_file = x.cert;
      tls.key_file = x.key;
      tls.ciphersuites = "TLS_AES_256_GCM_SHA384";
      caf::scoped_actor observer{sys};
      auto l = listen_tls(tls, echo_handler(),
                          caf::actor_cast<caf::actor>(observer));
      auto c = try_connect(l.port(), x.client);
      BOOST_TEST_REQUIRE(!c);
      BOOST_TEST(kind(c.error()) == errc::tls_handshake_failed,
                 describe(c.error()));
      BOOST_TEST(contains(describe(c.error()), x.cause), describe(c.error()));
      BOOST_TEST(contains(describe(c.error()), "127.0.0.1:"));
      auto ev = await_event(observer, connection_event::handshake_failed);
      BOOST_TEST(ev.has_value());
      // The listener is healthy: a good client still gets through.
      auto good = client_tls();
      good.verify_peer = false;
      auto ok = connect_tls(l.port(), good);
      echo_once(ok, "still here");
      BOOST_TEST(stats(l).handshake_failed == 1u);
    }
  }
}

BOOST_AUTO_TEST_CASE(plain_bytes_to_a_tls_port) {
  caf::scoped_actor observer{sys};
  auto l = listen_tls(server_tls(), echo_handler(),
                      caf::actor_cast<caf::actor>(observer));
  auto s = posix::connect_blocking(l.port());
  std::string req = "GET / HTTP/1.0\r\n\r\n";
  BOOST_TEST_REQUIRE(::send(s.fd(), req.data(), req.size(), 0) ==
                     static_cast<ssize_t>(req.size()));
  auto res = posix::read_to_end(s, 10s);
  BOOST_TEST((res.eof || res.error != 0));
  auto ev = await_event(observer, connection_event::handshake_failed);
  BOOST_TEST_REQUIRE(ev.has_value());
  BOOST_TEST(kind(ev->reason) == errc::tls_handshake_failed);
  auto c = connect_tls(l.port());
  echo_once(c, "fine");
}

BOOST_AUTO_TEST_CASE(silent_client_hits_the_handshake_timeout) {
  auto tls = server_tls();
  tls.handshake_timeout = 300ms;
  caf::scoped_actor observer{sys};
  auto l =
      listen_tls(tls, echo_handler(), caf::actor_cast<caf::actor>(observer));
  auto t0 = posix::steady::now();
  auto s = posix::connect_blocking(l.port());
  auto res = posix::read_to_end(s, 10s);
  auto took = posix::steady::now() - t0;
  BOOST_TEST((res.eof || res.error != 0));
  BOOST_TEST(took >= 300ms);
  auto ev = await_event(observer, connection_event::handshake_failed);
  BOOST_TEST_REQUIRE(ev.has_value());
  BOOST_TEST(kind(ev->reason) == errc::tls_handshake_timeout,
             describe(ev->reason));
}

BOOST_AUTO_TEST_CASE(a_thousand_failed_handshakes_leak_no_fd) {
  auto l = listen_tls();
  {
    // The first handshake starts the crypto threads (and Asio's reactor
    // with its descriptors): count from there.
    auto c = connect_tls(l.port());
    echo_once(c, "warm");
  }
  BOOST_TEST_REQUIRE(no_open_connections());
  auto before = posix::count_open_fds();
  std::string junk(64, 'x');
  for (int i = 0; i < 1000; ++i) {
    auto s = posix::connect_blocking(l.port());
    ::send(s.fd(), junk.data(), junk.size(), MSG_NOSIGNAL);
    auto res = posix::read_to_end(s, 10s);
    BOOST_TEST_REQUIRE((res.eof || res.error != 0));
  }
  auto x = await_stats(l, [](const listener_stats& st) {
    return st.handshake_failed == 1000 && st.open == 0;
  });
  BOOST_TEST(x.handshake_failed == 1000u);
  BOOST_TEST(x.open == 0u);
  BOOST_TEST(no_open_connections());
  BOOST_TEST(posix::count_open_fds() == before);
}

BOOST_AUTO_TEST_CASE(reload_swaps_certificates_for_new_handshakes) {
  namespace fs = std::filesystem;
  auto dir = certs().path("reload");
  fs::create_directories(dir);
  auto cert = dir + "/cert.pem";
  auto key = dir + "/key.pem";
  auto put = [](const std::string& from, const std::string& to) {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  };
  put(certs().server_cert, cert);
  put(certs().server_key, key);
  auto tls = server_tls();
  tls.cert_file = cert;
  tls.key_file = key;
  auto l = listen_tls(tls);
  auto lax = client_tls();
  lax.verify_peer = false;
  auto first = connect_tls(l.port(), lax);
  BOOST_TEST(contains(first.tls().peer_subject, "CN=localhost"));
  put(certs().other_cert, cert);
  put(certs().other_key, key);
  auto reload = [&] {
    caf::error result;
    self->request(l.handle(), 10s, tls_reload_atom::value)
        .receive([] {}, [&](caf::error& err) { result = std::move(err); });
    return result;
  };
  auto err = reload();
  BOOST_TEST(!err, describe(err));
  auto second = connect_tls(l.port(), lax);
  BOOST_TEST(contains(second.tls().peer_subject, "CN=other.test"));
  echo_once(first, "old connection still works");
  // A broken key: the reload fails, naming the file; the last good
  // certificate stays.
  put(certs().not_pem, key);
  err = reload();
  BOOST_TEST(kind(err) == errc::invalid_config);
  BOOST_TEST(contains(describe(err), "key_file"), describe(err));
  BOOST_TEST(contains(describe(err), key), describe(err));
  auto third = connect_tls(l.port(), lax);
  BOOST_TEST(contains(third.tls().peer_subject, "CN=other.test"));
  echo_once(third, "served with the last good certificate");
}

BOOST_AUTO_TEST_CASE(client_resumes_its_session) {
  auto l = listen_tls();
  {
    auto c = connect_tls(l.port());
    // TLS 1.3 tickets come after the handshake; a round trip takes them in.
    echo_once(c, "first");
    BOOST_TEST(!c.tls().resumed);
  }
  auto c = connect_tls(l.port());
  echo_once(c, "second");
  BOOST_TEST(c.tls().resumed);
}

BOOST_AUTO_TEST_CASE(bad_files_fail_the_listener_at_start) {
  listener_config lc;
  lc.host = "127.0.0.1";
  lc.tls = server_tls();
  lc.tls.key_file = certs().mismatched_key;
  auto res = spawn_listener(*rt, lc, echo_handler());
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST(kind(res.error()) == errc::invalid_config);
  BOOST_TEST(contains(describe(res.error()), "listener.tls.key_file"),
             describe(res.error()));
  lc.tls = server_tls();
  lc.tls.cert_file = certs().missing;
  res = spawn_listener(*rt, lc, echo_handler());
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST(contains(describe(res.error()), certs().missing),
             describe(res.error()));
}

BOOST_AUTO_TEST_CASE(our_client_against_openssl_s_server) {
  std::unique_ptr<child_process> server;
  auto port = start_s_server(server, {"-alpn", "echo"});
  auto tls = client_tls();
  tls.alpn = {"echo"};
  auto c = connect_tls(port, tls);
  BOOST_TEST(c.tls().alpn == "echo");
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"hello\n"}));
  BOOST_TEST(read_exactly(c, 6) == "olleh\n");
}

BOOST_AUTO_TEST_CASE(a_peer_that_vanishes_is_a_truncation) {
  std::unique_ptr<child_process> server;
  auto port = start_s_server(server);
  auto c = connect_tls(port);
  BOOST_TEST_REQUIRE(!c.write_bytes(bytes{"abc\n"}));
  BOOST_TEST(read_exactly(c, 4) == "cba\n");
  // SIGKILL: the kernel closes the socket, no close_notify is sent.
  server->kill(SIGKILL);
  auto err = read_until_error(c);
  BOOST_TEST(kind(err) == errc::tls_truncated, describe(err));
}

BOOST_AUTO_TEST_SUITE_END()
