// tcpactor-emfile-child: an echo listener that runs out of file descriptors,
// for emfile_test.py. It starts a runtime and a listener on 127.0.0.1 (port
// 0), then lowers RLIMIT_NOFILE to the descriptors it holds plus <spare>, so
// the <spare>+1st connection hits EMFILE. RLIMIT_NOFILE is per process, so it
// lives apart from the test binary (and from tcpactor-echo, which stays
// free of test hooks).
//
// stdout: "listening on 127.0.0.1:<port> fds=<open> limit=<soft limit>", then
// one line per command read from stdin:
//   stats -> "stats accepted=N open=N no_descriptors=N over_limit=N
//             metrics_no_descriptors=N metrics_accepted=N"
//   quit (or EOF) -> exits 0 after closing every connection.

#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "proc_probe.hpp"
#include "tcpactor/all.hpp"

using tcpactor::test::posix::count_open_fds;

namespace {

int fail(const std::string& msg) {
  std::fprintf(stderr, "tcpactor-emfile-child: %s\n", msg.c_str());
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2)
    return fail("usage: tcpactor-emfile-child <spare-fds>");
  auto spare = std::strtoul(argv[1], nullptr, 10);
  std::signal(SIGPIPE, SIG_IGN);
  caf::actor_system_config cfg;
  tcpactor::configure(cfg);
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  tcpactor::runtime_config rc;
  rc.io_threads = 1;
  auto rt = tcpactor::runtime::make(sys, rc);
  if (!rt)
    return fail(tcpactor::describe(rt.error()));
  tcpactor::listener_config lc;
  lc.host = "127.0.0.1";
  auto l = tcpactor::spawn_listener(
      *rt, lc,
      [](caf::event_based_actor*,
         const tcpactor::caller&) -> caf::expected<tcpactor::service> {
        return tcpactor::echo_service();
      });
  if (!l)
    return fail(tcpactor::describe(l.error()));
  // Lowered only now: everything the runtime and listener need is open, so
  // only accepted sockets compete for the spare descriptors.
  auto fds = count_open_fds();
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = fds + spare;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0)
    return fail("setrlimit failed");
  std::cout << "listening on 127.0.0.1:" << l->port() << " fds=" << fds
            << " limit=" << rl.rlim_cur << std::endl;
  caf::scoped_actor self{sys};
  std::string line;
  while (std::getline(std::cin, line) && line != "quit") {
    if (line != "stats") {
      std::cout << "unknown command " << line << std::endl;
      continue;
    }
    self->request(l->handle(), std::chrono::seconds{10},
                  tcpactor::stats_atom::value)
        .receive(
            [&rt](const tcpactor::listener_stats& st) {
              // The runtime's metrics beside the listener's own counters.
              auto m = rt->metrics();
              std::cout << "stats accepted=" << st.accepted
                        << " open=" << st.open
                        << " no_descriptors=" << st.no_descriptors
                        << " over_limit=" << st.over_limit
                        << " metrics_no_descriptors="
                        << m.refused_no_descriptors
                        << " metrics_accepted=" << m.connections_accepted
                        << std::endl;
            },
            [](const caf::error& err) {
              std::cout << "stats failed: " << tcpactor::describe(err)
                        << std::endl;
            });
  }
  rt->shutdown();
  return 0;
}
