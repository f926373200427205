#pragma once

// Options of tcpactor-echo: built-in defaults, then the config file, then the
// command line. CAF 0.17's own option parsing silently ignores unknown keys
// and values of the wrong type (and chokes on options named `c`, `ca` or
// `caf`), so this parser is ours and names the file, line and key of every
// mistake.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tcpactor/backend.hpp"
#include "tcpactor/backend_pool.hpp"
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
    // A client silent for five minutes is gone; the library leaves this
    // off because only the protocol knows.
    listener.connection.idle_timeout = std::chrono::minutes{5};
    // The echo service never blocks, so it runs where its socket wakes it:
    // no hop to a scheduler thread per message (ping-pong +6-22%, connect
    // churn +16%, README Performance). The library leaves this off, since
    // only the service knows whether it may block.
    listener.connection.handlers_on_io_thread = true;
  }

  /// Address, port, backlog and per-connection limits.
  tcpactor::listener_config listener;
  /// I/O threads.
  tcpactor::runtime_config runtime;
  tcpactor::log::level log_level = tcpactor::log::level::info;
  tcpactor::log::format log_format = tcpactor::log::format::text;
  /// `--metrics=HOST:PORT`: serve GET /metrics (Prometheus text) there;
  /// empty host: off.
  std::string metrics_host;
  uint16_t metrics_port = 0;
  /// CAF scheduler threads. CAF's default, max(cores, 4), only adds idle
  /// workers polling every 50us on a small box.
  std::size_t scheduler_threads = 2;
  /// SIGTERM drains: open connections get this long to finish on their own.
  std::chrono::milliseconds drain_timeout{30'000};
  /// `tls.enabled`. `automatic` turns TLS on when a certificate
  /// (`tls.cert-file` or `tls.pkcs12-file`) is configured, which is what an
  /// operator who sets one expects; `off` keeps the settings but serves
  /// plain TCP.
  enum class tls_switch : uint8_t { automatic, on, off };
  tls_switch tls_enabled = tls_switch::automatic;
  /// A password and the key that supplied it: `tls.key-password` (the value
  /// itself), `tls.key-password-file` (a path) or `tls.key-password-env` (a
  /// variable name). parse() resolves it into `listener.tls`.
  struct secret {
    std::string key;
    std::string value;
  };
  secret key_password;
  secret pkcs12_password;
  secret trust_store_password;
  /// The tls.* keys given (file or command line) other than `tls.enabled`.
  std::vector<std::string> tls_keys_given;
  /// A `--tls.sni` was seen: the command line's list replaces the file's.
  bool sni_on_command_line = false;
  /// `backend.nodes`: "HOST:PORT,..." to forward every chunk to; empty:
  /// echo here. parse() fills `backend.backends` from it.
  std::string backend_nodes;
  /// Assignment policy, timeouts and the nodes, once parsed.
  tcpactor::backend_pool_config backend;
  /// `backend.tls`: BASP over TLS; `automatic` turns it on when
  /// `backend.certificate` is set.
  tls_switch backend_tls = tls_switch::automatic;
  /// Certificates for BASP (`node.tls` resolved by parse()).
  tcpactor::node_config node;
  /// `backend.passphrase-file`: password of an encrypted `backend.key`.
  std::string backend_passphrase_file;
  /// File read before the command line is applied; empty: none.
  std::string config_file;
  /// `-h` or `--help` was given: print `help_text()` and exit.
  bool help = false;
};

/// Fills `out` from `argv` and the config file it names. On failure returns
/// false and sets `err` to one line without the program name, e.g.
/// "x.conf:7: unknown key 'echo.prot'" or "--port: 'abc' is not an integer".
bool parse(int argc, char** argv, options& out, std::string& err);

/// Rewrites the library's field names in `text` (an error or log line) as
/// the daemon's keys, e.g. "listener.tls.key_file" as "tls.key-file" and
/// "runtime.io_threads" as "echo.io-threads", so users find the line to fix.
/// File paths are left alone.
std::string daemon_key_names(const std::string& text, const options& opts);

/// The text `--help` prints: every option, its config-file key and default.
std::string help_text();

} // namespace tcpactor_echo
