#include "tcpactor/backend_pool.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixtures.hpp"

extern char** environ;

namespace tcpactor::test {

namespace {

/// A real back-end node: the tcpactor-worker binary in its own process (two
/// actor systems in one process share one CAF node id, and BASP refuses a
/// link to its own node).
class worker_process {
public:
  worker_process() = default;
  worker_process(const worker_process&) = delete;
  worker_process& operator=(const worker_process&) = delete;
  ~worker_process() { stop(SIGKILL); }

  /// Starts a worker on 127.0.0.1:`port` (0: any) and waits for its
  /// "publishing ..." line; fails the test if it does not come.
  void start(const std::string& service, uint16_t port = 0) {
    int fds[2];
    BOOST_TEST_REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t acts;
    posix_spawn_file_actions_init(&acts);
    posix_spawn_file_actions_adddup2(&acts, fds[1], STDOUT_FILENO);
    std::vector<std::string> args{TCPACTOR_WORKER_PATH, "--host=127.0.0.1",
                                  "--port=" + std::to_string(port),
                                  "--service=" + service,
                                  "--log-level=warning"};
    std::vector<char*> argv;
    for (auto& x : args)
      argv.push_back(x.data());
    argv.push_back(nullptr);
    auto rc = posix_spawn(&pid_, TCPACTOR_WORKER_PATH, &acts, nullptr,
                          argv.data(), environ);
    posix_spawn_file_actions_destroy(&acts);
    close(fds[1]);
    BOOST_TEST_REQUIRE(rc == 0, "posix_spawn: " << std::strerror(rc));
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (line.find('\n') == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fds[0], POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0)
        break;
      char buf[256];
      auto n = read(fds[0], buf, sizeof(buf));
      if (n <= 0)
        break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    close(fds[0]);
    auto colon = line.rfind(':');
    BOOST_TEST_REQUIRE(
        (line.rfind("publishing ", 0) == 0 && colon != std::string::npos),
        "worker did not start: '" << line << "'");
    port_ = static_cast<uint16_t>(std::stoi(line.substr(colon + 1)));
  }

  /// Stops the process (SIGSTOP) and returns once it is stopped: kill()
  /// returns before every thread halted, and one may still answer.
  void pause() {
    ::kill(pid_, SIGSTOP);
    int status = 0;
    BOOST_TEST_REQUIRE(waitpid(pid_, &status, WUNTRACED) == pid_);
    BOOST_TEST_REQUIRE(WIFSTOPPED(status));
  }

  void resume() { ::kill(pid_, SIGCONT); }

  void stop(int sig) {
    if (pid_ <= 0)
      return;
    ::kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  uint16_t port() const noexcept { return port_; }

private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

/// A front end: an actor system with the middleman, a runtime, a pool.
struct backend_fixture {
  static caf::actor_system_config& make_config(caf::actor_system_config& cfg) {
    configure(cfg);
    cfg.set("scheduler.max-threads", 2);
    auto err = configure_node(cfg, node_config{});
    BOOST_TEST_REQUIRE(!err);
    return cfg;
  }

  backend_fixture() : sys(make_config(cfg)) {
    runtime_config rc;
    rc.io_threads = 2;
    auto res = runtime::make(sys, rc);
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    rt.emplace(std::move(*res));
  }

  ~backend_fixture() {
    // Connections first (their actors hold leases), then the pool.
    if (rt)
      rt->shutdown();
    pool.reset();
  }

  void make_pool(std::vector<uint16_t> ports,
                 backend_policy policy = backend_policy::round_robin,
                 std::chrono::milliseconds request_timeout = 10s) {
    backend_pool_config pc;
    pc.request_timeout = request_timeout;
    for (auto p : ports)
      pc.backends.push_back(backend_endpoint{"127.0.0.1", p});
    pc.policy = policy;
    pc.initial_backoff = 50ms;
    pc.max_backoff = 200ms;
    auto res = backend_pool::make(sys, pc);
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    pool.emplace(std::move(*res));
  }

  uint16_t listen() {
    listener_config lc;
    lc.host = "127.0.0.1";
    auto res = spawn_listener(*rt, lc, pool->handler(), caf::actor{observer});
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    return res->port();
  }

  blocking_client connect(uint16_t port) {
    client_config cc;
    cc.host = "127.0.0.1";
    cc.port = port;
    auto res = blocking_client::connect(*rt, cc);
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    return std::move(*res);
  }

  /// Sends `text` and returns the reply of the same size.
  std::string roundtrip(blocking_client& c, const std::string& text) {
    BOOST_TEST_REQUIRE(!c.write_bytes(bytes{text}));
    return read_exactly(c, text.size());
  }

  /// Waits until the pool counts `n` connections on node `idx`.
  bool wait_connections(std::size_t idx, uint64_t n) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pool->status()[idx].connections == n)
        return true;
      // The count drops when the connection's actor is gone, which no event
      // reports: poll it, bounded by the deadline.
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }

  caf::actor_system_config cfg;
  caf::actor_system sys;
  std::optional<runtime> rt;
  std::optional<backend_pool> pool;
  caf::scoped_actor observer{sys};
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(backend_pool_tests, backend_fixture)

BOOST_AUTO_TEST_CASE(parse_backends_names_the_bad_entry) {
  auto ok = parse_backends("127.0.0.1:7100, [::1]:7101,host:1");
  BOOST_TEST_REQUIRE(static_cast<bool>(ok), why(ok));
  BOOST_TEST(ok->size() == 3u);
  BOOST_TEST((*ok)[1].host == "::1");
  BOOST_TEST((*ok)[1].to_string() == "[::1]:7101");
  for (auto bad :
       {"", "host", "host:0", "host:70000", "::1:5", "a:1,,b:2", "host:x1"}) {
    auto res = parse_backends(bad, "backend.nodes");
    BOOST_TEST_REQUIRE(!res, bad);
    BOOST_TEST((kind(res.error()) == errc::invalid_config));
    BOOST_TEST(describe(res.error()).find("backend.nodes") != std::string::npos,
               describe(res.error()));
  }
}

BOOST_AUTO_TEST_CASE(config_errors_name_the_field) {
  backend_pool_config pc;
  BOOST_TEST(describe(pc.validate()).find("backend_pool.backends") !=
             std::string::npos);
  pc.backends.push_back({"127.0.0.1", 1});
  pc.max_backoff = 1ms;
  BOOST_TEST(describe(pc.validate()).find("backend_pool.max_backoff") !=
             std::string::npos);
  node_config nc;
  nc.tls = true;
  BOOST_TEST(describe(nc.validate()).find("node.certificate") !=
             std::string::npos);
  nc.certificate = "/nonexistent/cert.pem";
  nc.key = "/nonexistent/key.pem";
  nc.cafile = "/nonexistent/ca.pem";
  auto text = describe(nc.validate());
  BOOST_TEST(text.find("/nonexistent/cert.pem") != std::string::npos, text);
}

BOOST_AUTO_TEST_CASE(round_robin_alternates_and_keeps_the_node) {
  worker_process echo, upper;
  echo.start("echo");
  upper.start("upper");
  make_pool({echo.port(), upper.port()});
  BOOST_TEST_REQUIRE(pool->wait_until_up(2, 10s) == 2u);
  auto port = listen();
  std::vector<blocking_client> clients;
  std::vector<std::string> replies;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(connect(port));
    replies.push_back(roundtrip(clients.back(), "abc"));
  }
  BOOST_TEST(replies[0] == "abc");
  BOOST_TEST(replies[1] == "ABC");
  BOOST_TEST(replies[2] == "abc");
  BOOST_TEST(replies[3] == "ABC");
  // A connection keeps its node for every later chunk.
  for (int round = 0; round < 3; ++round)
    for (std::size_t i = 0; i < clients.size(); ++i)
      BOOST_TEST(roundtrip(clients[i], "xy" + std::to_string(round)) ==
                 (i % 2 == 0 ? "xy" : "XY") + std::to_string(round));
  auto st = pool->status();
  BOOST_TEST(st[0].assigned == 2u);
  BOOST_TEST(st[1].assigned == 2u);
  BOOST_TEST(st[0].connections == 2u);
}

BOOST_AUTO_TEST_CASE(least_connections_picks_the_node_with_fewest) {
  worker_process echo, upper;
  echo.start("echo");
  upper.start("upper");
  make_pool({echo.port(), upper.port()}, backend_policy::least_connections);
  BOOST_TEST_REQUIRE(pool->wait_until_up(2, 10s) == 2u);
  auto port = listen();
  auto a = connect(port);
  BOOST_TEST(roundtrip(a, "a") == "a"); // node 0
  auto b = connect(port);
  BOOST_TEST(roundtrip(b, "b") == "B"); // node 1
  BOOST_TEST(!b.close());
  BOOST_TEST_REQUIRE(wait_connections(1, 0));
  // Round robin would pick node 0 now; node 1 serves fewer.
  auto c = connect(port);
  BOOST_TEST(roundtrip(c, "c") == "C");
  auto d = connect(port);
  // A tie (1 and 1): in turn, after node 1 comes node 0.
  BOOST_TEST(roundtrip(d, "d") == "d");
}

BOOST_AUTO_TEST_CASE(a_dead_node_fails_its_connections_and_others_go_on) {
  worker_process echo, upper;
  echo.start("echo");
  upper.start("upper");
  make_pool({echo.port(), upper.port()});
  BOOST_TEST_REQUIRE(pool->wait_until_up(2, 10s) == 2u);
  auto port = listen();
  std::vector<blocking_client> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(connect(port));
    roundtrip(clients.back(), "hi");
  }
  echo.stop(SIGKILL);
  // Each of the three connections on the dead node fails with
  // backend_down, which the listener reports as it closes them.
  for (int i = 0; i < 3; ++i) {
    auto ev = await_event(observer, connection_event::closed);
    BOOST_TEST_REQUIRE(ev.has_value(), "connection " << i << " never closed");
    BOOST_TEST((kind(ev->reason) == errc::backend_down), describe(ev->reason));
    BOOST_TEST(describe(ev->reason).find(std::to_string(echo.port())) !=
                   std::string::npos,
               describe(ev->reason));
  }
  for (std::size_t i = 0; i < clients.size(); i += 2)
    BOOST_TEST(static_cast<bool>(read_until_error(clients[i])));
  // The others still answer, and new connections go to the live node.
  for (std::size_t i = 1; i < clients.size(); i += 2)
    BOOST_TEST(roundtrip(clients[i], "on") == "ON");
  for (int i = 0; i < 3; ++i) {
    auto c = connect(port);
    BOOST_TEST(roundtrip(c, "new") == "NEW");
  }
  auto st = pool->status();
  BOOST_TEST(!st[0].up);
  BOOST_TEST(st[0].failures >= 1u);
}

BOOST_AUTO_TEST_CASE(a_hung_node_times_out_only_its_own_connections) {
  worker_process echo, upper;
  echo.start("echo");
  upper.start("upper");
  // The budget covers a node's first reply under the sanitizers too (its
  // first BASP message sets up proxies on both ends): 500 ms failed one run
  // in 40 under TSan, the request timing out before the node was paused.
  make_pool({echo.port(), upper.port()}, backend_policy::round_robin, 2s);
  BOOST_TEST_REQUIRE(pool->wait_until_up(2, 10s) == 2u);
  auto port = listen();
  auto a = connect(port);
  BOOST_TEST(roundtrip(a, "a") == "a");
  auto b = connect(port);
  BOOST_TEST(roundtrip(b, "b") == "B");
  // A stopped process keeps its TCP link up and answers nothing: only the
  // request timeout can tell.
  echo.pause();
  BOOST_TEST_REQUIRE(!a.write_bytes(bytes{"lost"}));
  auto ev = await_event(observer, connection_event::closed);
  BOOST_TEST_REQUIRE(ev.has_value());
  BOOST_TEST((kind(ev->reason) == errc::backend_down), describe(ev->reason));
  BOOST_TEST(describe(ev->reason).find("no reply within 2000ms") !=
                 std::string::npos,
             describe(ev->reason));
  BOOST_TEST(static_cast<bool>(read_until_error(a)));
  // The other node's connection never noticed.
  BOOST_TEST(roundtrip(b, "still") == "STILL");
  echo.resume();
}

BOOST_AUTO_TEST_CASE(without_a_node_up_connections_are_refused) {
  worker_process echo;
  echo.start("echo");
  auto dead_port = echo.port();
  echo.stop(SIGKILL);
  make_pool({dead_port});
  BOOST_TEST(pool->wait_until_up(1, 300ms) == 0u);
  auto port = listen();
  auto c = connect(port);
  auto ev = await_event(observer, connection_event::rejected);
  BOOST_TEST_REQUIRE(ev.has_value());
  BOOST_TEST((kind(ev->reason) == errc::backend_down), describe(ev->reason));
  BOOST_TEST(describe(ev->reason).find("no back end is up") !=
                 std::string::npos,
             describe(ev->reason));
  BOOST_TEST(static_cast<bool>(read_until_error(c)));
}

BOOST_AUTO_TEST_CASE(a_restarted_node_is_linked_and_used_again) {
  worker_process echo, upper;
  echo.start("echo");
  upper.start("upper");
  make_pool({echo.port(), upper.port()});
  BOOST_TEST_REQUIRE(pool->wait_until_up(2, 10s) == 2u);
  auto port = listen();
  auto old_port = echo.port();
  echo.stop(SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (pool->status()[0].up && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms); // polls the pool's view, bounded
  BOOST_TEST_REQUIRE(!pool->status()[0].up);
  echo.start("echo", old_port);
  BOOST_TEST_REQUIRE(pool->wait_until_up(2, 10s) == 2u);
  std::string seen;
  for (int i = 0; i < 4; ++i) {
    auto c = connect(port);
    seen += roundtrip(c, "z");
  }
  // Both nodes serve again: two lower and two upper case replies.
  BOOST_TEST((seen == "zZzZ" || seen == "ZzZz"), seen);
}

BOOST_AUTO_TEST_SUITE_END()

} // namespace tcpactor::test
