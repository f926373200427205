// tcpactor-echo: a TCP echo daemon. Every byte a client sends comes back.
//
// Exit codes: 0 stopped by SIGINT/SIGTERM, 1 cannot listen (or start), 2 bad
// option or config file. A TLS file that is missing, unreadable, malformed or
// does not match its partner is 2 as well: like a bad value, it is fixed in
// the configuration (or the files it names), and retrying cannot help, while
// 1 stays what a supervisor may retry (a port still in use).

#include <chrono>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>

#include <pthread.h>
#include <sys/resource.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "metrics_endpoint.hpp"
#include "options.hpp"
#include "tcpactor/backend_pool.hpp"
#include "tcpactor/connection.hpp"
#include "tcpactor/errors.hpp"
#include "tcpactor/listener.hpp"
#include "tcpactor/log.hpp"
#include "tcpactor/runtime.hpp"

namespace {

using namespace std::chrono_literals;
namespace log = tcpactor::log;

constexpr const char* prog = "tcpactor-echo";

/// How long SIGTERM waits for the listener to confirm it stopped accepting.
constexpr auto stop_timeout = 5s;

/// How long SIGHUP waits for the listener to reload; it reads a few files.
constexpr auto reload_timeout = 10s;

/// Prints "tcpactor-echo: <msg>" on stderr and returns `code`. Startup errors
/// bypass the log so they show at every log level, quiet included.
int fail(int code, const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", prog, msg.c_str());
  return code;
}

void info(const std::string& msg) {
  if (log::enabled(log::level::info))
    log::write(log::level::info, msg);
}

std::string address(const std::string& host, uint16_t port) {
  // Brackets keep an IPv6 literal apart from its port.
  if (host.find(':') != std::string::npos)
    return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

/// Renders a configuration error in the daemon's key names, e.g.
/// "connection.write-low-watermark" for the library's
/// "connection.write_low_watermark", so users find the line to fix.
std::string config_error(const caf::error& err,
                         const tcpactor_echo::options& opts) {
  auto text = tcpactor::describe(err);
  const std::string prefix = "invalid_config: ";
  if (text.compare(0, prefix.size(), prefix) == 0)
    text = "invalid configuration: " + text.substr(prefix.size());
  return tcpactor_echo::daemon_key_names(text, opts);
}

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

/// Asks the listener to read its TLS files again. A failure keeps the
/// certificates in use, so it is a warning and the daemon goes on serving.
void reload_tls(caf::actor_system& sys, const tcpactor::listener& lst,
                const tcpactor_echo::options& opts) {
  if (!opts.listener.tls.enabled) {
    info("SIGHUP ignored: TLS is not enabled, nothing to reload");
    return;
  }
  info("SIGHUP: reloading the TLS certificates");
  caf::scoped_actor self{sys};
  self->request(lst.handle(), reload_timeout, tcpactor::tls_reload_atom::value)
      .receive([] { info("SIGHUP: TLS certificates reloaded"); },
               [&](const caf::error& err) {
                 log::write(log::level::warning,
                            "SIGHUP: TLS reload failed, still serving the "
                            "previous certificates: " +
                                config_error(err, opts));
               });
}

/// Waits for SIGINT or SIGTERM and returns it; SIGHUP reloads TLS.
int wait_for_stop_signal(const sigset_t& set, caf::actor_system& sys,
                         const tcpactor::listener& lst,
                         const tcpactor_echo::options& opts) {
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0)
      continue;
    if (sig != SIGHUP)
      return sig;
    reload_tls(sys, lst, opts);
  }
}

/// Stops accepting. Open connections go on until the runtime closes them.
void stop_accepting(caf::actor_system& sys, const tcpactor::listener& lst) {
  caf::scoped_actor self{sys};
  self->request(lst.handle(), stop_timeout, tcpactor::graceful_stop_atom::value)
      .receive([] { info("stopped accepting"); },
               [](const caf::error& err) {
                 log::write(log::level::warning,
                            "listener did not confirm the stop: " +
                                tcpactor::describe(err));
               });
}

/// Stops accepting and lets open connections finish on their own, up to
/// `deadline`; the listener closes what is left then.
void drain(caf::actor_system& sys, const tcpactor::listener& lst,
           std::chrono::milliseconds deadline) {
  info("draining: waiting up to " + std::to_string(deadline.count()) +
       "ms for open connections to finish");
  caf::scoped_actor self{sys};
  self->request(lst.handle(), deadline + stop_timeout,
                tcpactor::drain_atom::value, caf::timespan{deadline})
      .receive(
          [](uint64_t forced) {
            if (forced == 0)
              info("drained: every connection finished");
            else
              log::write(log::level::warning, "drain deadline passed: closed " +
                                                  std::to_string(forced) +
                                                  " connection(s)");
          },
          [](const caf::error& err) {
            log::write(log::level::warning,
                       "drain failed: " + tcpactor::describe(err));
          });
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, as Go's runtime and most
/// servers do: the soft default (often 1024) exists for select()-era
/// programs, and a daemon that holds a socket per client would otherwise
/// refuse clients long before memory or the operator's hard limit runs out.
/// Returns the soft limit now in force.
rlim_t raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return 0;
  if (lim.rlim_cur < lim.rlim_max) {
    auto want = lim;
    want.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0)
      lim = want;
  }
  return lim.rlim_cur;
}

int run(const tcpactor_echo::options& opts, const sigset_t& signals) {
  auto fd_limit = raise_fd_limit();
  caf::actor_system_config cfg;
  tcpactor::configure(cfg);
  cfg.set("scheduler.max-threads", opts.scheduler_threads);
  bool forward = !opts.backend.backends.empty();
  // The middleman (and its thread) only when forwarding: a plain echo
  // daemon opens no BASP port and links to no node.
  if (forward)
    if (auto err = tcpactor::configure_node(cfg, opts.node))
      return fail(2, config_error(err, opts));
  caf::actor_system sys{cfg};
  // Declared after `sys`, so it is destroyed first: the runtime closes every
  // socket and lets their actors quit before ~actor_system waits for them.
  auto rt = tcpactor::runtime::make(sys, opts.runtime);
  if (!rt)
    return fail(1, "cannot start: " + tcpactor::describe(rt.error()));
  std::optional<tcpactor::backend_pool> pool;
  tcpactor::connect_handler on_connect =
      [](caf::event_based_actor*,
         const tcpactor::caller& conn) -> caf::expected<tcpactor::service> {
    return tcpactor::echo_service(conn);
  };
  if (forward) {
    auto made = tcpactor::backend_pool::make(sys, opts.backend);
    if (!made)
      return fail(2, config_error(made.error(), opts));
    pool.emplace(std::move(*made));
    // Serve as soon as every node is linked; nodes still down by then are
    // linked in the background, and connections go to those up meanwhile.
    auto n = opts.backend.backends.size();
    auto up = pool->wait_until_up(n, opts.backend.connect_timeout);
    info(std::to_string(up) + " of " + std::to_string(n) + " back end(s) up" +
         (opts.node.tls ? " (BASP over TLS)" : ""));
    on_connect = pool->handler();
  }
  auto lst = tcpactor::spawn_listener(*rt, opts.listener, on_connect);
  // The library reads the TLS files before it binds, and names the field,
  // the file and the cause.
  if (!lst && tcpactor::kind(lst.error()) == tcpactor::errc::invalid_config)
    return fail(2, config_error(lst.error(), opts));
  if (!lst)
    return fail(1, "cannot listen on " +
                       (opts.listener.unix_path.empty()
                            ? address(opts.listener.host, opts.listener.port)
                            : opts.listener.unix_path) +
                       ": " + tcpactor::describe(lst.error()));
  // On stdout as well as in the log, so scripts learn the port the kernel
  // picked for --port 0 even at log level warning or quiet.
  // A Unix-domain listener's host is its path, with no port.
  auto where = opts.listener.unix_path.empty()
                   ? address(lst->host(), lst->port())
                   : opts.listener.unix_path;
  std::printf("listening on %s%s\n", where.c_str(),
              opts.listener.tls.enabled ? " (TLS)" : "");
  std::fflush(stdout);
  // Declared after `rt`, so it stops before the runtime it reads.
  std::unique_ptr<tcpactor_echo::metrics_endpoint> metrics;
  if (!opts.metrics_host.empty()) {
    auto ep = tcpactor_echo::metrics_endpoint::start(
        sys, *rt, opts.metrics_host, opts.metrics_port);
    if (!ep)
      return fail(1, "cannot serve metrics on " +
                         address(opts.metrics_host, opts.metrics_port) + ": " +
                         tcpactor::describe(ep.error()));
    metrics = std::move(*ep);
    auto& ml = metrics->listener();
    std::printf("metrics on %s\n", address(ml.host(), ml.port()).c_str());
    std::fflush(stdout);
    info("serving metrics at http://" + address(ml.host(), ml.port()) +
         "/metrics");
  }
  if (auto& framing = opts.listener.connection.framing;
      framing.type != tcpactor::framing_config::codec::raw)
    info("framing " + framing.to_string() + " (one echo per whole frame)");
  if (opts.listener.proxy_protocol != tcpactor::proxy_protocol::off)
    info("PROXY protocol " + tcpactor::to_string(opts.listener.proxy_protocol) +
         " header expected on every connection (at most " +
         std::to_string(opts.listener.proxy_header_timeout.count()) +
         "ms); peers are the addresses it names");
  info("file descriptor limit " + std::to_string(fd_limit));
  auto sig = wait_for_stop_signal(signals, sys, *lst, opts);
  info(std::string{sig == SIGINT ? "SIGINT" : "SIGTERM"} +
       ": stopping the listener on " + where);
  if (sig == SIGTERM)
    drain(sys, *lst, opts.drain_timeout);
  else
    stop_accepting(sys, *lst);
  info("closing " + std::to_string(rt->open_connections()) +
       " open connection(s)");
  rt->shutdown();
  info("stopped");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  tcpactor_echo::options opts;
  std::string err;
  if (!tcpactor_echo::parse(argc, argv, opts, err))
    return fail(2, err);
  if (opts.help) {
    std::fputs(tcpactor_echo::help_text().c_str(), stdout);
    return 0;
  }
  // Check everything before binding anything. Our parser already checked
  // each value; these catch combinations such as a low watermark above the
  // high one, and name the field.
  if (auto e = opts.runtime.validate())
    return fail(2, config_error(e, opts));
  if (auto e = opts.listener.connection.validate("connection"))
    return fail(2, config_error(e, opts));
  if (auto e = opts.listener.validate())
    return fail(2, config_error(e, opts));
  log::set_level(opts.log_level);
  log::set_format(opts.log_format);
  // Block before CAF and Asio start threads: new threads inherit the mask,
  // so these signals reach only the sigwait in main.
  auto signals = handled_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A peer that resets mid-write must cost one connection, not the process.
  std::signal(SIGPIPE, SIG_IGN);
  return run(opts, signals);
}
