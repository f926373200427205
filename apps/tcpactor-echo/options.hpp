#pragma once

// Options of tcpactor-echo: built-in defaults, then the config file, then the
// command line. CAF 0.17's own option parsing silently ignores unknown keys
// and values of the wrong type (and chokes on options named `c`, `ca` or
// `caf`), so this parser is ours and names the file, line and key of every
// mistake.

#include <cstddef>
#include <string>

#include "tcpactor/config.hpp"
#include "tcpactor/log.hpp"

namespace tcpactor_echo {

/// Everything the daemon can be told.
struct options {
  options() {
    // Loopback by default: an echo server open to the network is a gift to
    // reflection attacks, so exposing it must be a deliberate choice.
    listener.host = "127.0.0.1";
    listener.port = 7000;
  }

  /// Address, port, backlog and per-connection limits.
  tcpactor::listener_config listener;
  /// I/O threads.
  tcpactor::runtime_config runtime;
  tcpactor::log::level log_level = tcpactor::log::level::info;
  /// CAF scheduler threads. CAF's default, max(cores, 4), only adds idle
  /// workers polling every 50us on a small box.
  std::size_t scheduler_threads = 2;
  /// File read before the command line is applied; empty: none.
  std::string config_file;
  /// `-h` or `--help` was given: print `help_text()` and exit.
  bool help = false;
};

/// Fills `out` from `argv` and the config file it names. On failure returns
/// false and sets `err` to one line without the program name, e.g.
/// "x.conf:7: unknown key 'echo.prot'" or "--port: 'abc' is not an integer".
bool parse(int argc, char** argv, options& out, std::string& err);

/// The text `--help` prints: every option, its config-file key and default.
std::string help_text();

} // namespace tcpactor_echo
