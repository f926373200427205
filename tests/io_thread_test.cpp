// Handlers on I/O threads (opt-in): the actor runs where its socket is read,
// and everything else about a connection stays as it is.

#include <pthread.h>

#include <caf/send.hpp>

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;
using namespace tcpactor::test::posix;

namespace {

using thread_atom = caf::atom_constant<caf::atom("thread")>;

std::string thread_name() {
  char buf[32] = {};
  pthread_getname_np(pthread_self(), buf, sizeof(buf));
  return buf;
}

/// Echoes and reports the name of the thread each chunk ran on, and the
/// chunk's size.
connect_handler naming_echo(caf::actor sink) {
  return [sink](caf::event_based_actor* self,
                const caller&) -> caf::expected<service> {
    return service{
        [self, sink](const bytes& in) {
          self->send(sink, thread_atom::value, thread_name(), in.size());
          return in;
        },
        [](error_atom, const caf::error&) {},
        [](closed_atom) {},
    };
  };
}

std::vector<std::string> echo_and_collect(recording_fixture& f, uint16_t port,
                                          int rounds) {
  auto s = connect_blocking(port);
  std::vector<std::string> names;
  for (int i = 0; i < rounds; ++i) {
    auto msg = "ping " + std::to_string(i);
    auto res = pump(s, msg, msg.size());
    BOOST_TEST_REQUIRE(res.in == msg);
    f.self->receive([&](thread_atom, std::string& name, std::size_t) {
      names.push_back(name);
    });
  }
  return names;
}

bool is_io(const std::string& name) {
  return name.rfind("tcpactor-io-", 0) == 0u;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(io_thread_tests, recording_fixture)

BOOST_AUTO_TEST_CASE(handlers_run_on_the_io_thread_when_asked) {
  listener_config lc;
  lc.connection.handlers_on_io_thread = true;
  auto l = listen(naming_echo(sink()), lc);
  auto names = echo_and_collect(*this, l.port(), 200);
  // The actor starts on the loop and only the loop wakes it, so no chunk
  // ever finds it held by a scheduler thread.
  for (std::size_t i = 0; i < names.size(); ++i)
    BOOST_TEST_REQUIRE(is_io(names[i]),
                       "chunk #" << i << " ran on " << names[i]);
}

// The whole life of the actor runs on the loop, from the connect handler to
// `closed`: a connection costs no scheduler thread a wakeup (connect churn).
BOOST_AUTO_TEST_CASE(connect_handler_chunks_and_closed_run_on_the_io_thread) {
  using phase_atom = caf::atom_constant<caf::atom("phase")>;
  listener_config lc;
  lc.connection.handlers_on_io_thread = true;
  auto report = [sink = sink()](const std::string& what) {
    caf::anon_send(sink, phase_atom::value, what, thread_name());
  };
  auto l = listen(
      [report](caf::event_based_actor*,
               const caller&) -> caf::expected<service> {
        report("connect");
        return service{
            [report](const bytes& in) {
              report("bytes");
              return in;
            },
            [](error_atom, const caf::error&) {},
            [report](closed_atom) { report("closed"); },
        };
      },
      lc);
  for (int conn = 0; conn < 20; ++conn) {
    {
      auto s = connect_blocking(l.port());
      for (int i = 0; i < 5; ++i) {
        auto res = pump(s, "ping", 4);
        BOOST_TEST_REQUIRE(res.in == "ping");
      }
    } // closes the socket: the peer's FIN ends the connection
    int seen = 0;
    bool closed = false;
    while (!closed) {
      self->receive(
          [&](phase_atom, const std::string& what, const std::string& name) {
            ++seen;
            closed = what == "closed";
            BOOST_TEST_REQUIRE(is_io(name), "connection " << conn << ": "
                                                          << what << " ran on "
                                                          << name);
          },
          caf::after(std::chrono::seconds(10)) >>
              [&] { BOOST_FAIL("connection " << conn << ": no report"); });
    }
    BOOST_TEST(seen == 7); // connect, five chunks, closed
  }
}

// A large chunk's work (its reply's copy at least) outweighs the hop, and
// on a worker it runs beside the loop's reads (stream 0.76 -> 0.95 of epoll).
BOOST_AUTO_TEST_CASE(large_chunks_go_to_the_scheduler_even_when_asked) {
  listener_config lc;
  lc.connection.handlers_on_io_thread = true;
  auto l = listen(naming_echo(sink()), lc);
  auto s = connect_blocking(l.port());
  const std::string msg(32 * 1024, 'x');
  std::size_t large = 0;
  for (int i = 0; i < 20; ++i) {
    auto res = pump(s, msg, msg.size());
    BOOST_TEST_REQUIRE(res.in == msg);
    for (std::size_t seen = 0; seen < msg.size();) {
      self->receive(
          [&](thread_atom, std::string& name, std::size_t n) {
            seen += n;
            if (n > 4096) {
              ++large;
              BOOST_TEST_REQUIRE(!is_io(name),
                                 "a " << n << " byte chunk ran on " << name);
            }
          },
          caf::after(std::chrono::seconds(10)) >>
              [&] { BOOST_FAIL("no report after " << seen << " bytes"); });
    }
  }
  // Loopback hands 32 KiB sends over in few, large pieces.
  BOOST_TEST(large > 0u);
}

BOOST_AUTO_TEST_CASE(handlers_run_on_the_scheduler_by_default) {
  auto l = listen(naming_echo(sink()));
  auto names = echo_and_collect(*this, l.port(), 50);
  for (auto& name : names)
    BOOST_TEST_REQUIRE(name.rfind("tcpactor-io-", 0) != 0u, name);
}

BOOST_AUTO_TEST_CASE(contract_holds_on_the_io_thread) {
  // The recording service checks the message order (open, bytes, at most
  // one error, closed last) across FIN and RST with 100 connections.
  listener_config lc;
  lc.connection.handlers_on_io_thread = true;
  auto l = listen(recording_handler(sink()), lc);
  std::vector<raw_socket> socks;
  for (int i = 0; i < 100; ++i) {
    socks.push_back(connect_blocking(l.port()));
    auto res = pump(socks.back(), "abc", 3);
    BOOST_TEST_REQUIRE(res.in == "abc");
  }
  for (std::size_t i = 0; i < socks.size(); ++i)
    if (i % 2 == 0)
      socks[i].reset();
  socks.clear();
  BOOST_TEST_REQUIRE(log.collect_exits(self, 100));
  for (auto& kvp : log.by_id)
    BOOST_TEST(log.check(kvp.first).empty(), log.render(kvp.first));
}

BOOST_AUTO_TEST_SUITE_END()
