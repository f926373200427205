#pragma once

// Shared test scaffolding: a real actor system, a real runtime with real
// loopback sockets. Nothing is mocked.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <boost/test/unit_test.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "tcpactor/all.hpp"

namespace tcpactor::test {

using namespace std::chrono_literals;

/// Why `x` failed, or "ok". Boost.Test evaluates the message of a passing
/// check too, so never call `x.error()` there directly.
template <class T>
std::string why(const caf::expected<T>& x) {
  return x ? std::string{"ok"} : describe(x.error());
}

/// Reads `n` bytes or fails the test.
inline std::string read_exactly(blocking_client& c, std::size_t n,
                                std::chrono::milliseconds timeout = 10s) {
  std::string out;
  while (out.size() < n) {
    auto chunk = c.read_bytes(timeout);
    BOOST_TEST_REQUIRE(static_cast<bool>(chunk), "read failed after "
                                                   << out.size() << " of " << n
                                                   << " bytes: " << why(chunk));
    out.append(chunk->data(), chunk->size());
  }
  return out;
}

/// An actor system (2 scheduler threads, like a small production box) and a
/// runtime with 2 I/O threads. Members are destroyed in reverse order: the
/// runtime closes every socket before the system waits for its actors.
struct runtime_fixture {
  static caf::actor_system_config& make_config(caf::actor_system_config& cfg) {
    add_error_category(cfg);
    cfg.set("scheduler.max-threads", 2);
    return cfg;
  }

  runtime_fixture() : sys(make_config(cfg)) {
    runtime_config rc;
    rc.io_threads = 2;
    auto res = runtime::make(sys, rc);
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    rt.emplace(std::move(*res));
  }

  /// Starts a listener on 127.0.0.1, port 0.
  listener listen(connect_handler h, listener_config lc = {},
                  caf::actor observer = {}) {
    lc.host = lc.host == "0.0.0.0" ? "127.0.0.1" : lc.host;
    auto res = spawn_listener(*rt, lc, std::move(h), std::move(observer));
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    return *res;
  }

  /// Connects a blocking client to 127.0.0.1:port.
  blocking_client connect(uint16_t port, client_config cc = {}) {
    cc.host = cc.host.empty() ? "127.0.0.1" : cc.host;
    cc.port = port;
    auto res = blocking_client::connect(*rt, cc);
    BOOST_TEST_REQUIRE(static_cast<bool>(res), why(res));
    return std::move(*res);
  }

  caf::actor_system_config cfg;
  caf::actor_system sys;
  std::optional<runtime> rt;
};

/// A connect handler that echoes.
inline connect_handler echo_handler() {
  return [](caf::event_based_actor*, const caller&) -> caf::expected<service> {
    return echo_service();
  };
}

} // namespace tcpactor::test
