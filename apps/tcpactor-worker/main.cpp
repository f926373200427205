// tcpactor-worker: a back-end node. Publishes an echo (or upper-case)
// service actor over CAF's BASP, for `tcpactor-echo --backend=...`.
//
// Exit codes: 0 stopped by SIGINT/SIGTERM, 1 cannot publish, 2 bad option
// or certificate file.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

#include <pthread.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "../common/text.hpp"
#include "tcpactor/backend.hpp"
#include "tcpactor/errors.hpp"
#include "tcpactor/log.hpp"
#include "tcpactor/runtime.hpp"

namespace {

namespace log = tcpactor::log;
using tcpactor::apps::in_quotes;

constexpr const char* prog = "tcpactor-worker";

struct options {
  // Loopback unless told: a published actor takes messages from anyone who
  // can connect (README, Scale-out).
  std::string host = "127.0.0.1";
  uint16_t port = 7100;
  std::string service = "echo";
  enum class tls_switch { automatic, on, off } tls = tls_switch::automatic;
  tcpactor::node_config node;
  std::string passphrase_file;
  log::level log_level = log::level::info;
  std::size_t scheduler_threads = 2;
  bool help = false;
};

const char* help_text =
    "Usage: tcpactor-worker [OPTIONS]\n"
    "Publishes a service actor over CAF's BASP for tcpactor-echo "
    "--backend.\n\n"
    "  --host=ADDR              address to bind (default 127.0.0.1)\n"
    "  --port=N                 port; 0 lets the kernel pick (default 7100)\n"
    "  --service=echo|upper     reply with the chunk, or in upper case\n"
    "  --tls=auto|on|off        BASP over TLS; auto: on when --certificate\n"
    "                           is given (default auto)\n"
    "  --certificate=FILE       PEM certificate this node presents\n"
    "  --key=FILE               its PEM private key\n"
    "  --passphrase-file=FILE   password of an encrypted key (first line)\n"
    "  --cafile=FILE            CA that peers' certificates must chain to\n"
    "  --capath=DIR             hashed CA directory instead of --cafile\n"
    "  --scheduler-threads=N    CAF scheduler threads (default 2)\n"
    "  --log-level=LEVEL        trace|debug|info|warning|error|quiet\n"
    "  -h, --help               this text\n";

int fail(int code, const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", prog, msg.c_str());
  return code;
}

bool parse_number(std::string_view text, uint64_t max, uint64_t& out) {
  if (text.empty() || text.size() > 10)
    return false;
  out = 0;
  for (auto c : text) {
    if (c < '0' || c > '9')
      return false;
    out = out * 10 + static_cast<uint64_t>(c - '0');
  }
  return out <= max;
}

bool parse(int argc, char** argv, options& o, std::string& err) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      o.help = true;
      return true;
    }
    if (arg.substr(0, 2) != "--" || arg.find('=') == std::string_view::npos) {
      err = in_quotes(arg) + ": expected --name=value (see --help)";
      return false;
    }
    auto eq = arg.find('=');
    auto name = arg.substr(2, eq - 2);
    std::string value{arg.substr(eq + 1)};
    auto bad = [&](const std::string& why) {
      err = "--" + std::string{name} + ": " + in_quotes(value) + " " + why;
      return false;
    };
    uint64_t n = 0;
    if (name == "host") {
      o.host = value;
    } else if (name == "port") {
      if (!parse_number(value, 65535, n))
        return bad("is not a port 0-65535");
      o.port = static_cast<uint16_t>(n);
    } else if (name == "service") {
      if (value != "echo" && value != "upper")
        return bad("is not one of echo, upper");
      o.service = value;
    } else if (name == "tls") {
      if (value == "auto")
        o.tls = options::tls_switch::automatic;
      else if (value == "on" || value == "true")
        o.tls = options::tls_switch::on;
      else if (value == "off" || value == "false")
        o.tls = options::tls_switch::off;
      else
        return bad("is not one of auto, on, off");
    } else if (name == "certificate") {
      o.node.certificate = value;
    } else if (name == "key") {
      o.node.key = value;
    } else if (name == "passphrase-file") {
      o.passphrase_file = value;
    } else if (name == "cafile") {
      o.node.cafile = value;
    } else if (name == "capath") {
      o.node.capath = value;
    } else if (name == "scheduler-threads") {
      if (!parse_number(value, 1024, n) || n == 0)
        return bad("is not a count 1-1024");
      o.scheduler_threads = n;
    } else if (name == "log-level") {
      if (!log::from_string(value, o.log_level))
        return bad("is not one of trace, debug, info, warning, error, quiet");
    } else {
      err = "unknown option --" + std::string{name} + " (see --help)";
      return false;
    }
  }
  switch (o.tls) {
    case options::tls_switch::on:
      o.node.tls = true;
      break;
    case options::tls_switch::off:
      o.node.tls = false;
      break;
    case options::tls_switch::automatic:
      o.node.tls = !o.node.certificate.empty();
      break;
  }
  if (o.node.tls && !o.passphrase_file.empty()) {
    std::ifstream in{o.passphrase_file};
    if (!in || !std::getline(in, o.node.passphrase)) {
      err = "--passphrase-file: cannot read '" + o.passphrase_file +
            "': " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

/// Renders the library's field names as this program's options.
std::string option_names(std::string text) {
  const std::string kind = "invalid_config: ";
  if (text.compare(0, kind.size(), kind) == 0)
    text = "invalid configuration: " + text.substr(kind.size());
  const std::string prefix = "node.";
  for (auto pos = text.find(prefix); pos != std::string::npos;
       pos = text.find(prefix, pos))
    text.replace(pos, prefix.size(), "--");
  return text;
}

int run(const options& o, const sigset_t& signals) {
  caf::actor_system_config cfg;
  tcpactor::configure(cfg);
  cfg.set("scheduler.max-threads", o.scheduler_threads);
  if (auto err = tcpactor::configure_node(cfg, o.node))
    return fail(2, option_names(tcpactor::describe(err)));
  caf::actor_system sys{cfg};
  auto svc = o.service == "upper" ? sys.spawn(tcpactor::upper_case_backend)
                                  : sys.spawn(tcpactor::echo_backend);
  auto port = tcpactor::publish_backend(sys, svc, o.host, o.port);
  if (!port) {
    caf::anon_send_exit(svc, caf::exit_reason::user_shutdown);
    return fail(1, "cannot publish: " + tcpactor::describe(port.error()));
  }
  // On stdout for scripts (the kernel's port for --port=0), at every level.
  std::printf("publishing %s on %s%s\n", o.service.c_str(),
              tcpactor::backend_endpoint{o.host, *port}.to_string().c_str(),
              o.node.tls ? " (TLS)" : "");
  std::fflush(stdout);
  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
    // retry: interrupted
  }
  if (log::enabled(log::level::info))
    log::write(log::level::info,
               std::string{sig == SIGINT ? "SIGINT" : "SIGTERM"} +
                   ": stopping");
  // The service is stateless: front ends see their links drop and fail the
  // connections it served with backend_down.
  caf::anon_send_exit(svc, caf::exit_reason::user_shutdown);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  std::string err;
  if (!parse(argc, argv, o, err))
    return fail(2, err);
  if (o.help) {
    std::fputs(help_text, stdout);
    return 0;
  }
  log::set_level(o.log_level);
  // Block before CAF starts threads: they inherit the mask, so these
  // signals reach only the sigwait in run().
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return run(o, signals);
}
