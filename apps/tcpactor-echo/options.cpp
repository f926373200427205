#include "options.hpp"
#include "../common/text.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tcpactor/errors.hpp"

namespace tcpactor_echo {

namespace {

/// One value as written. In the file it may be quoted; on the command line
/// it never is, because the shell already removed the quotes.
struct raw_value {
  std::string text;
  bool quoted = false;
  bool in_file = false;
};

/// One setting: where it lives in the file, what the command line calls it,
/// how to parse it and how to show its default.
struct option_spec {
  std::string section;
  std::string key;
  /// Short command-line name, e.g. "port" for "echo.port"; may be empty.
  std::string alias;
  /// Placeholder for --help, e.g. "<size>".
  std::string type;
  std::string help;
  /// Stores the value; returns why it does not fit, or "" if it does.
  std::function<std::string(options&, const raw_value&)> set;
  /// Renders the current value (for the defaults in --help).
  std::function<std::string(options&)> get;

  std::string name() const { return section + "." + key; }
};

std::string_view trim(std::string_view str) {
  constexpr std::string_view blanks = " \t\r\n";
  auto first = str.find_first_not_of(blanks);
  if (first == std::string_view::npos)
    return {};
  auto last = str.find_last_not_of(blanks);
  return str.substr(first, last - first + 1);
}

using tcpactor::apps::in_quotes;

// -- value parsers: each returns why the value is bad, or "" -----------------

// In CAF's format "7000" is a string, so a quoted number is a type error.
std::string parse_digits(const raw_value& v, std::string_view digits,
                         uint64_t& out) {
  if (v.quoted)
    return "expected a number without quotes, got \"" + v.text + "\"";
  if (!digits.empty() && digits[0] == '-')
    return in_quotes(v.text) + " must not be negative";
  auto last = digits.data() + digits.size();
  auto [ptr, ec] = std::from_chars(digits.data(), last, out);
  if (ec == std::errc::result_out_of_range)
    return in_quotes(v.text) + " is too large";
  if (digits.empty() || ec != std::errc{} || ptr != last)
    return in_quotes(v.text) + " is not an integer";
  return {};
}

std::string parse_count(const raw_value& v, uint64_t min, uint64_t max,
                        uint64_t& out) {
  if (auto err = parse_digits(v, v.text, out); !err.empty())
    return err;
  if (out < min || out > max)
    return in_quotes(v.text) + " is out of range (" + std::to_string(min) +
           "-" + std::to_string(max) + ")";
  return {};
}

constexpr uint64_t kib = 1024;

struct unit {
  std::string_view suffix;
  uint64_t factor;
};

constexpr unit size_units[] = {
    {"", 1}, {"KiB", kib}, {"MiB", kib* kib}, {"GiB", kib* kib* kib}};

std::string parse_size(const raw_value& v, uint64_t& out) {
  std::string_view text = v.text;
  auto split = std::min(text.find_first_not_of("-0123456789"), text.size());
  auto suffix = text.substr(split);
  for (auto& u : size_units) {
    if (u.suffix != suffix)
      continue;
    uint64_t n = 0;
    if (auto err = parse_digits(v, text.substr(0, split), n); !err.empty())
      return err;
    if (n > UINT64_MAX / u.factor)
      return in_quotes(v.text) + " is too large";
    out = n * u.factor;
    return {};
  }
  return in_quotes(v.text) + " is not a size (e.g. 65536, 64KiB or 1MiB)";
}

std::string format_size(uint64_t n) {
  for (auto i = std::size(size_units); i-- > 1;)
    if (n != 0 && n % size_units[i].factor == 0)
      return std::to_string(n / size_units[i].factor) +
             std::string{size_units[i].suffix};
  return std::to_string(n);
}

std::string parse_duration(const raw_value& v, std::chrono::milliseconds& out) {
  // CAF's timespan units. The connection counts in milliseconds, so finer
  // units must come out whole rather than be rounded behind the user's back.
  struct duration_unit {
    std::string_view suffix;
    uint64_t per_ms; // units per millisecond (ns, us)
    uint64_t ms;     // milliseconds per unit (ms and up)
  };
  constexpr duration_unit units[] = {{"ns", 1'000'000, 0}, {"us", 1'000, 0},
                                     {"ms", 0, 1},         {"s", 0, 1'000},
                                     {"min", 0, 60'000},   {"h", 0, 3'600'000}};
  std::string_view text = v.text;
  auto split = std::min(text.find_first_not_of("-0123456789"), text.size());
  auto suffix = text.substr(split);
  if (split == text.size() && !v.quoted)
    return in_quotes(v.text) + " needs a unit, e.g. 5s or 500ms";
  for (auto& u : units) {
    if (u.suffix != suffix)
      continue;
    uint64_t n = 0;
    if (auto err = parse_digits(v, text.substr(0, split), n); !err.empty())
      return err;
    uint64_t ms = 0;
    if (u.per_ms != 0) {
      if (n % u.per_ms != 0)
        return in_quotes(v.text) + " is not a whole number of milliseconds";
      ms = n / u.per_ms;
    } else {
      if (n > uint64_t{INT64_MAX} / u.ms)
        return in_quotes(v.text) + " is too large";
      ms = n * u.ms;
    }
    out = std::chrono::milliseconds{static_cast<int64_t>(ms)};
    return {};
  }
  return in_quotes(v.text) +
         " is not a duration (a number and ns, us, ms, s, min or h)";
}

std::string format_duration(std::chrono::milliseconds x) {
  auto n = x.count();
  if (n != 0 && n % 1000 == 0)
    return std::to_string(n / 1000) + "s";
  return std::to_string(n) + "ms";
}

// -- option kinds
// ---------------------------------------------------------------

// `field` maps an `options&` to the member it sets, so one table row says
// everything about a setting.

template <class Field>
option_spec string_option(std::string section, std::string key,
                          std::string alias, std::string help, Field field,
                          std::string type = "<string>") {
  return {std::move(section),
          std::move(key),
          std::move(alias),
          std::move(type),
          std::move(help),
          [field](options& o, const raw_value& v) -> std::string {
            if (v.in_file && !v.quoted)
              return "expected a quoted string, e.g. \"" + v.text + "\"";
            field(o) = v.text;
            return {};
          },
          [field](options& o) { return "\"" + field(o) + "\""; }};
}

template <class Field>
option_spec count_option(std::string section, std::string key,
                         std::string alias, std::string help, uint64_t min,
                         uint64_t max, Field field) {
  auto type = "<" + std::to_string(min) + "-" + std::to_string(max) + ">";
  return {std::move(section),
          std::move(key),
          std::move(alias),
          std::move(type),
          std::move(help),
          [field, min, max](options& o, const raw_value& v) {
            uint64_t n = 0;
            auto err = parse_count(v, min, max, n);
            if (err.empty())
              field(o) = static_cast<std::decay_t<decltype(field(o))>>(n);
            return err;
          },
          [field](options& o) { return std::to_string(field(o)); }};
}

template <class Field>
option_spec size_option(std::string section, std::string key, std::string alias,
                        std::string help, Field field) {
  return {std::move(section),
          std::move(key),
          std::move(alias),
          "<size>",
          std::move(help),
          [field](options& o, const raw_value& v) {
            uint64_t n = 0;
            auto err = parse_size(v, n);
            if (err.empty())
              field(o) = static_cast<std::size_t>(n);
            return err;
          },
          [field](options& o) { return format_size(field(o)); }};
}

template <class Field>
option_spec duration_option(std::string section, std::string key,
                            std::string alias, std::string help, Field field) {
  return {std::move(section),
          std::move(key),
          std::move(alias),
          "<duration>",
          std::move(help),
          [field](options& o, const raw_value& v) {
            return parse_duration(v, field(o));
          },
          [field](options& o) { return format_duration(field(o)); }};
}

/// A duration in whole seconds (fields of type std::chrono::seconds).
template <class Field>
option_spec seconds_option(std::string section, std::string key,
                           std::string alias, std::string help, Field field) {
  return {std::move(section),
          std::move(key),
          std::move(alias),
          "<duration>",
          std::move(help),
          [field](options& o, const raw_value& v) -> std::string {
            std::chrono::milliseconds ms{0};
            if (auto err = parse_duration(v, ms); !err.empty())
              return err;
            if (ms.count() % 1000 != 0)
              return in_quotes(v.text) + " is not a whole number of seconds";
            field(o) = std::chrono::duration_cast<std::chrono::seconds>(ms);
            return {};
          },
          [field](options& o) { return format_duration(field(o)); }};
}

template <class Field>
option_spec bool_option(std::string section, std::string key, std::string alias,
                        std::string help, Field field) {
  return {
      std::move(section),
      std::move(key),
      std::move(alias),
      "<true|false>",
      std::move(help),
      [field](options& o, const raw_value& v) -> std::string {
        if (!v.quoted && v.text == "true")
          field(o) = true;
        else if (!v.quoted && v.text == "false")
          field(o) = false;
        else
          return in_quotes(v.text) + " is not true or false";
        return {};
      },
      [field](options& o) { return std::string{field(o) ? "true" : "false"}; }};
}

option_spec log_level_option() {
  using tcpactor::log::level;
  return {"echo", "log-level", "log-level",
          "<trace|debug|info|warning|error|quiet>",
          "Lowest severity written to stderr. At debug, every connection's "
          "open and close is logged; at info, failed TLS handshakes.",
          // Quotes are optional: CAF users write levels as atoms ('info').
          [](options& o, const raw_value& v) -> std::string {
            if (!tcpactor::log::from_string(v.text, o.log_level))
              return in_quotes(v.text) + " is not one of trace, debug, info, "
                                         "warning, error, quiet";
            return {};
          },
          [](options& o) { return tcpactor::log::to_string(o.log_level); }};
}

option_spec log_format_option() {
  return {"echo",
          "log-format",
          "log-format",
          "<text|json|logfmt>",
          "How each log line is written: text (for people), json (one JSON "
          "object per line) or logfmt (key=value). json and logfmt carry "
          "time, level, event, conn_id, peer and reason as fields.",
          [](options& o, const raw_value& v) -> std::string {
            if (!tcpactor::log::from_string(v.text, o.log_format))
              return in_quotes(v.text) + " is not one of text, json, logfmt";
            return {};
          },
          [](options& o) { return tcpactor::log::to_string(o.log_format); }};
}

/// `echo.metrics`: HOST:PORT ([v6]:PORT) of the metrics endpoint; "" is off.
option_spec metrics_option() {
  return {"echo",
          "metrics",
          "metrics",
          "<host:port>",
          "Serve the runtime's metrics in Prometheus text format at "
          "http://HOST:PORT/metrics (HTTP/1.1 GET or HEAD); \"\" (the default) "
          "serves none. Port 0 lets the kernel pick; the daemon prints "
          "\"metrics on HOST:PORT\" on stdout.",
          [](options& o, const raw_value& v) -> std::string {
            if (v.in_file && !v.quoted)
              return "expected a quoted string, e.g. \"" + v.text + "\"";
            if (v.text.empty()) {
              o.metrics_host.clear();
              o.metrics_port = 0;
              return {};
            }
            auto colon = v.text.rfind(':');
            if (colon == std::string::npos || colon == 0)
              return in_quotes(v.text) +
                     " is not HOST:PORT (e.g. 127.0.0.1:9100)";
            auto host = v.text.substr(0, colon);
            if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
              host = host.substr(1, host.size() - 2);
            else if (host.find(':') != std::string::npos)
              return in_quotes(v.text) + ": write an IPv6 address in brackets, "
                                         "e.g. [::1]:9100";
            uint64_t port = 0;
            raw_value digits{v.text.substr(colon + 1), false, false};
            if (auto err = parse_count(digits, 0, 65535, port); !err.empty())
              return in_quotes(v.text) + ": port " + err;
            o.metrics_host = host;
            o.metrics_port = static_cast<uint16_t>(port);
            return {};
          },
          [](options& o) -> std::string {
            if (o.metrics_host.empty())
              return "\"\"";
            auto host = o.metrics_host.find(':') != std::string::npos
                            ? "[" + o.metrics_host + "]"
                            : o.metrics_host;
            return "\"" + host + ":" + std::to_string(o.metrics_port) + "\"";
          }};
}

/// `connection.framing`: a codec spec, parsed by the library so the daemon
/// accepts exactly what `framing_config::parse` does. Quotes are optional,
/// as for log-level; a delimiter containing ';' or '#' needs them in a file.
option_spec framing_option() {
  return {"connection",
          "framing",
          "framing",
          "<spec>",
          "How each connection cuts its byte stream into messages, each echoed "
          "as one frame: raw, line, line:crlf, length:N[:be|le][:inclusive], "
          "delimiter:TEXT or exact:N, optionally followed by ,max=BYTES. raw: "
          "chunks as read. line: lines ending in \\n (a trailing \\r is "
          "dropped), echoed with \\n; line:crlf: lines ending in \\r\\n. "
          "length:N: an N-byte length (N 1, 2, 4 or 8; be, the default, or le; "
          "inclusive: it counts the header too), then the payload, like "
          "Erlang's {packet,N}. delimiter:TEXT: frames end in TEXT (escapes "
          "\\n \\r \\t \\0 \\\\ \\xHH). exact:N: N bytes each. ,max=BYTES "
          "(k, m suffixes; default 1m) bounds a frame: a larger one closes the "
          "connection (frame_too_large). length and delimiter framing exclude "
          "half-close.",
          [](options& o, const raw_value& v) -> std::string {
            auto cfg =
                tcpactor::framing_config::parse(v.text, "connection.framing");
            if (cfg) {
              o.listener.connection.framing = *cfg;
              return {};
            }
            // The caller names the key already; keep only the reason.
            auto why = tcpactor::describe(cfg.error());
            for (std::string_view prefix :
                 {"invalid_config: ", "connection.framing: "})
              if (why.compare(0, prefix.size(), prefix) == 0)
                why.erase(0, prefix.size());
            if (why.find(v.text) == std::string::npos)
              why = in_quotes(v.text) + ": " + why;
            return why;
          },
          [](options& o) { return o.listener.connection.framing.to_string(); }};
}

/// A value from a fixed list. Quotes are optional, as for log-level.
option_spec choice_option(std::string section, std::string key,
                          std::string help, std::vector<std::string> choices,
                          std::function<void(options&, const std::string&)> put,
                          std::function<std::string(options&)> get) {
  std::string type = "<";
  std::string listed;
  for (auto& x : choices) {
    auto shown = x.empty() ? std::string{"\"\""} : x;
    type += (type.size() > 1 ? "|" : "") + shown;
    listed += (listed.empty() ? "" : ", ") + shown;
  }
  type += ">";
  return {
      std::move(section),
      std::move(key),
      {},
      std::move(type),
      std::move(help),
      [choices, put, listed](options& o, const raw_value& v) -> std::string {
        for (auto& x : choices)
          if (x == v.text) {
            put(o, v.text);
            return {};
          }
        return in_quotes(v.text) + " is not one of " + listed;
      },
      std::move(get)};
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  for (;;) {
    auto pos = text.find(sep);
    out.emplace_back(trim(text.substr(0, pos)));
    if (pos == std::string_view::npos)
      return out;
    text = text.substr(pos + 1);
  }
}

std::string join(const std::vector<std::string>& xs, std::string_view sep) {
  std::string out;
  for (auto& x : xs) {
    if (!out.empty())
      out += sep;
    out += x;
  }
  return out;
}

std::string tls_version_help(std::string_view which) {
  return std::string{which} +
         " protocol version: TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3; \"\" leaves "
         "it to OpenSSL.";
}

const std::vector<std::string> tls_versions = {"", "TLSv1", "TLSv1.1",
                                               "TLSv1.2", "TLSv1.3"};

/// auto|true|false, for a setting that is on when something else is set
/// unless forced either way.
option_spec switch_option(std::string section, std::string key,
                          std::string help,
                          options::tls_switch options::*field) {
  return choice_option(
      std::move(section), std::move(key), std::move(help),
      {"auto", "true", "false"},
      [field](options& o, const std::string& x) {
        o.*field = x == "true"    ? options::tls_switch::on
                   : x == "false" ? options::tls_switch::off
                                  : options::tls_switch::automatic;
      },
      [field](options& o) -> std::string {
        switch (o.*field) {
          case options::tls_switch::on:
            return "true";
          case options::tls_switch::off:
            return "false";
          default:
            return "auto";
        }
      });
}

/// A password given directly, as a file to read or as an environment
/// variable to read; whichever of the three keys comes last wins.
option_spec secret_option(std::string key, std::string type, std::string help,
                          options::secret options::*field) {
  auto full = "tls." + key;
  return {"tls",
          std::move(key),
          {},
          std::move(type),
          std::move(help),
          [full, field](options& o, const raw_value& v) -> std::string {
            if (v.in_file && !v.quoted)
              return "expected a quoted string, e.g. \"" + v.text + "\"";
            o.*field = {full, v.text};
            return {};
          },
          [full, field](options& o) {
            return "\"" + ((o.*field).key == full ? (o.*field).value : "") +
                   "\"";
          }};
}

std::vector<option_spec> tls_specs() {
  std::vector<option_spec> xs;
  auto tls = [](options& o) -> tcpactor::tls_config& { return o.listener.tls; };
  xs.push_back(switch_option(
      "tls", "enabled",
      "TLS on the listening port. auto: on when tls.cert-file or "
      "tls.pkcs12-file is set (any other tls.* setting without a "
      "certificate is an error); false: plain TCP whatever else is set.",
      &options::tls_enabled));
  xs.push_back(string_option(
      "tls", "cert-file", "",
      "Certificate chain, PEM: the server certificate first, then "
      "intermediates. Needs tls.key-file.",
      [tls](options& o) -> std::string& { return tls(o).cert_file; },
      "<path>"));
  xs.push_back(string_option(
      "tls", "key-file", "",
      "Private key of tls.cert-file, PEM (PKCS#8 or traditional, encrypted "
      "or not).",
      [tls](options& o) -> std::string& { return tls(o).key_file; }, "<path>"));
  xs.push_back(secret_option(
      "key-password", "<string>",
      "Password of an encrypted tls.key-file (also used for tls.sni keys). "
      "On the command line it shows in ps; prefer tls.key-password-file or "
      "tls.key-password-env.",
      &options::key_password));
  xs.push_back(secret_option(
      "key-password-file", "<path>",
      "Read the key password from this file's first line instead. "
      "Passwords are read once, at startup: a key renewed for SIGHUP must "
      "keep its password.",
      &options::key_password));
  xs.push_back(secret_option(
      "key-password-env", "<name>",
      "Read the key password from this environment variable instead.",
      &options::key_password));
  xs.push_back(string_option(
      "tls", "pkcs12-file", "",
      "PKCS#12 keystore (certificate, chain and key) instead of "
      "tls.cert-file and tls.key-file.",
      [tls](options& o) -> std::string& { return tls(o).pkcs12_file; },
      "<path>"));
  xs.push_back(secret_option(
      "pkcs12-password", "<string>",
      "Password of tls.pkcs12-file. On the command line it shows in ps; "
      "prefer tls.pkcs12-password-file or tls.pkcs12-password-env.",
      &options::pkcs12_password));
  xs.push_back(secret_option(
      "pkcs12-password-file", "<path>",
      "Read the keystore password from this file's first line instead.",
      &options::pkcs12_password));
  xs.push_back(secret_option(
      "pkcs12-password-env", "<name>",
      "Read the keystore password from this environment variable instead.",
      &options::pkcs12_password));
  xs.push_back(string_option(
      "tls", "ca-file", "",
      "CA certificates (PEM) that may sign client certificates; needed when "
      "tls.verify-client is not none.",
      [tls](options& o) -> std::string& { return tls(o).ca_file; }, "<path>"));
  xs.push_back(string_option(
      "tls", "ca-dir", "",
      "Directory of hashed CA certificates (openssl rehash), instead of or "
      "besides tls.ca-file.",
      [tls](options& o) -> std::string& { return tls(o).ca_dir; }, "<path>"));
  xs.push_back(string_option(
      "tls", "trust-store-file", "",
      "CA certificates in a PKCS#12 trust store (certificates only, as "
      "Java's keytool makes them), instead of or besides tls.ca-file.",
      [tls](options& o) -> std::string& { return tls(o).trust_store_file; },
      "<path>"));
  xs.push_back(secret_option("trust-store-password", "<string>",
                             "Password of tls.trust-store-file.",
                             &options::trust_store_password));
  xs.push_back(secret_option(
      "trust-store-password-file", "<path>",
      "Read the trust store password from this file's first line instead.",
      &options::trust_store_password));
  xs.push_back(secret_option(
      "trust-store-password-env", "<name>",
      "Read the trust store password from this environment variable "
      "instead.",
      &options::trust_store_password));
  xs.push_back(choice_option(
      "tls", "verify-client",
      "Client certificates (mTLS): none: not asked for; request: asked for "
      "and verified if sent; require: a client without a valid one fails "
      "the handshake.",
      {"none", "request", "require"},
      [tls](options& o, const std::string& x) {
        using auth = tcpactor::tls_config::client_auth;
        tls(o).verify_client = x == "require"   ? auth::require
                               : x == "request" ? auth::request
                                                : auth::none;
      },
      [tls](options& o) -> std::string {
        using auth = tcpactor::tls_config::client_auth;
        auto x = tls(o).verify_client;
        return x == auth::require   ? "require"
               : x == auth::request ? "request"
                                    : "none";
      }));
  xs.push_back(choice_option(
      "tls", "min-version", tls_version_help("Lowest"), tls_versions,
      [tls](options& o, const std::string& x) { tls(o).min_version = x; },
      [tls](options& o) { return "\"" + tls(o).min_version + "\""; }));
  xs.push_back(choice_option(
      "tls", "max-version", tls_version_help("Highest"), tls_versions,
      [tls](options& o, const std::string& x) { tls(o).max_version = x; },
      [tls](options& o) { return "\"" + tls(o).max_version + "\""; }));
  xs.push_back(string_option(
      "tls", "ciphers", "",
      "TLS 1.2 cipher list in OpenSSL's syntax; \"\": OpenSSL's default. An "
      "unknown name is an error.",
      [tls](options& o) -> std::string& { return tls(o).ciphers; }));
  xs.push_back(string_option(
      "tls", "ciphersuites", "",
      "TLS 1.3 ciphersuites, ':'-separated, e.g. "
      "\"TLS_AES_128_GCM_SHA256\"; \"\": OpenSSL's default.",
      [tls](options& o) -> std::string& { return tls(o).ciphersuites; }));
  xs.push_back(
      {"tls",
       "alpn",
       {},
       "<list>",
       "ALPN protocols, comma-separated in order of preference, "
       "e.g. \"h2,http/1.1\"; the first one the client also offers "
       "is chosen. \"\": no ALPN.",
       [tls](options& o, const raw_value& v) -> std::string {
         if (v.in_file && !v.quoted)
           return "expected a quoted string, e.g. \"" + v.text + "\"";
         std::vector<std::string> protos;
         if (!trim(v.text).empty())
           protos = split(v.text, ',');
         for (auto& x : protos)
           if (x.empty() || x.size() > 255)
             return in_quotes(v.text) +
                    " has an empty or over-long (255 bytes) protocol";
         tls(o).alpn = std::move(protos);
         return {};
       },
       [tls](options& o) { return "\"" + join(tls(o).alpn, ",") + "\""; }});
  xs.push_back(
      {"tls",
       "sni",
       {},
       "<host=cert-file,key-file>",
       "Another certificate, chosen when the client asks for this "
       "host name (SNI); \"*.example.com\" matches one label. Repeat "
       "the key (or the option) for more; the command line's list "
       "replaces the file's. Neither path may contain a comma. A "
       "client asking for no or another name gets tls.cert-file.",
       [tls](options& o, const raw_value& v) -> std::string {
         if (v.in_file && !v.quoted)
           return "expected a quoted string, e.g. "
                  "\"www.example.com=cert.pem,key.pem\"";
         if (!v.in_file && !o.sni_on_command_line) {
           o.sni_on_command_line = true;
           tls(o).sni_certificates.clear();
         }
         auto eq = v.text.find('=');
         auto comma = v.text.find(',', eq == std::string::npos ? 0 : eq);
         if (eq == std::string::npos || comma == std::string::npos)
           return in_quotes(v.text) + " is not host=cert-file,key-file";
         tcpactor::tls_sni_certificate x;
         std::string_view text = v.text;
         x.host = trim(text.substr(0, eq));
         x.cert_file = trim(text.substr(eq + 1, comma - eq - 1));
         x.key_file = trim(text.substr(comma + 1));
         if (x.host.empty() || x.cert_file.empty() || x.key_file.empty())
           return in_quotes(v.text) +
                  " is not host=cert-file,key-file (a part is empty)";
         tls(o).sni_certificates.push_back(std::move(x));
         return {};
       },
       [tls](options& o) {
         std::string out;
         for (auto& x : tls(o).sni_certificates)
           out += (out.empty() ? "\"" : ", \"") + x.host + "=" + x.cert_file +
                  "," + x.key_file + "\"";
         return out.empty() ? std::string{"none"} : out;
       }});
  xs.push_back(duration_option(
      "tls", "handshake-timeout", "",
      "A TLS handshake that takes longer fails and closes the connection.",
      [tls](options& o) -> std::chrono::milliseconds& {
        return tls(o).handshake_timeout;
      }));
  xs.push_back(
      {"tls",
       "session-timeout",
       {},
       "<duration>",
       "Lifetime of a cached TLS session or ticket, in whole "
       "seconds.",
       [tls](options& o, const raw_value& v) -> std::string {
         std::chrono::milliseconds ms{0};
         if (auto err = parse_duration(v, ms); !err.empty())
           return err;
         if (ms.count() % 1000 != 0)
           return in_quotes(v.text) + " is not a whole number of seconds";
         tls(o).session_timeout =
             std::chrono::duration_cast<std::chrono::seconds>(ms);
         return {};
       },
       [tls](options& o) { return format_duration(tls(o).session_timeout); }});
  xs.push_back(bool_option(
      "tls", "session-resumption", "",
      "Session cache and tickets, so returning clients skip the full "
      "handshake.",
      [tls](options& o) -> bool& { return tls(o).session_resumption; }));
  return xs;
}

std::vector<option_spec> backend_specs() {
  std::vector<option_spec> xs;
  xs.push_back(string_option(
      "backend", "nodes", "backend",
      "Forward every chunk (or frame) to these back-end nodes "
      "(tcpactor-worker) over CAF's BASP and write their replies back, "
      "instead of echoing here: HOST:PORT[,HOST:PORT...], IPv6 as "
      "[ADDR]:PORT. Each connection keeps one node for its lifetime; if "
      "that node goes down, the connection fails with backend_down. Empty: "
      "echo locally.",
      [](options& o) -> std::string& { return o.backend_nodes; },
      "<host:port,...>"));
  xs.push_back(choice_option(
      "backend", "policy",
      "Which node a new connection gets: the next one up in turn, or the "
      "one serving the fewest connections.",
      {"round-robin", "least-connections"},
      [](options& o, const std::string& x) {
        o.backend.policy = x == "least-connections"
                               ? tcpactor::backend_policy::least_connections
                               : tcpactor::backend_policy::round_robin;
      },
      [](options& o) -> std::string {
        return o.backend.policy == tcpactor::backend_policy::least_connections
                   ? "least-connections"
                   : "round-robin";
      }));
  xs.push_back(duration_option(
      "backend", "request-timeout", "",
      "A chunk the node leaves unanswered this long fails its connection "
      "(backend_down).",
      [](options& o) -> std::chrono::milliseconds& {
        return o.backend.request_timeout;
      }));
  xs.push_back(duration_option(
      "backend", "connect-timeout", "",
      "One attempt to link to a node (TCP, TLS and BASP handshakes). At "
      "start the daemon waits this long at most for every node to be up.",
      [](options& o) -> std::chrono::milliseconds& {
        return o.backend.connect_timeout;
      }));
  xs.push_back(duration_option(
      "backend", "max-backoff", "",
      "Longest wait between attempts to relink a lost node; waits start at "
      "100ms and double.",
      [](options& o) -> std::chrono::milliseconds& {
        return o.backend.max_backoff;
      }));
  xs.push_back(switch_option(
      "backend", "tls",
      "BASP between the nodes over TLS, both ends presenting a certificate "
      "signed by backend.cafile. auto: on when backend.certificate is set; "
      "false: plain BASP, which anyone who can reach a worker's port can "
      "use.",
      &options::backend_tls));
  xs.push_back(string_option(
      "backend", "certificate", "",
      "PEM certificate this node presents to the workers.",
      [](options& o) -> std::string& { return o.node.certificate; }, "<path>"));
  xs.push_back(string_option(
      "backend", "key", "", "PEM private key of backend.certificate.",
      [](options& o) -> std::string& { return o.node.key; }, "<path>"));
  xs.push_back(string_option(
      "backend", "passphrase-file", "",
      "File whose first line is the password of an encrypted backend.key.",
      [](options& o) -> std::string& { return o.backend_passphrase_file; },
      "<path>"));
  xs.push_back(string_option(
      "backend", "cafile", "",
      "PEM CA certificate(s) the workers' certificates must chain to.",
      [](options& o) -> std::string& { return o.node.cafile; }, "<path>"));
  xs.push_back(string_option(
      "backend", "capath", "",
      "Directory of hashed CA certificates, instead of backend.cafile.",
      [](options& o) -> std::string& { return o.node.capath; }, "<path>"));
  return xs;
}

const std::vector<option_spec>& specs() {
  static const std::vector<option_spec> result = [] {
    std::vector<option_spec> xs;
    auto conn = [](options& o) -> tcpactor::connection_config& {
      return o.listener.connection;
    };
    xs.push_back(string_option(
        "echo", "host", "host",
        "Address to bind: an IPv4 or IPv6 literal or a host name. 0.0.0.0 "
        "exposes the echo service to the network.",
        [](options& o) -> std::string& { return o.listener.host; }));
    xs.push_back(count_option(
        "echo", "port", "port", "Port to bind; 0 lets the kernel pick one.", 0,
        65535, [](options& o) -> uint16_t& { return o.listener.port; }));
    xs.push_back(count_option(
        "echo", "backlog", "backlog", "Length of the kernel's accept queue.", 1,
        INT_MAX, [](options& o) -> int& { return o.listener.backlog; }));
    xs.push_back(count_option(
        "echo", "max-connections", "max-connections",
        "Open connections at most; 0: unlimited. Beyond it a new connection "
        "is reset at once and logged once per burst.",
        0, UINT32_MAX,
        [](options& o) -> std::size_t& { return o.listener.max_connections; }));
    xs.push_back(count_option(
        "echo", "max-connections-per-ip", "max-connections-per-ip",
        "Open connections per client address at most; 0: unlimited; at most "
        "max-connections.",
        0, UINT32_MAX, [](options& o) -> std::size_t& {
          return o.listener.max_connections_per_ip;
        }));
    xs.push_back(count_option("echo", "io-threads", "io-threads",
                              "I/O threads, each running its own event loop; "
                              "0: half the cores, at least one.",
                              0, 1024, [](options& o) -> std::size_t& {
                                return o.runtime.io_threads;
                              }));
    xs.push_back(log_level_option());
    xs.push_back(log_format_option());
    xs.push_back(metrics_option());
    xs.push_back(size_option(
        "connection", "read-chunk", "read-chunk",
        "Largest chunk one read delivers to the connection's actor, 512 to "
        "16MiB.",
        [conn](options& o) -> std::size_t& { return conn(o).read_chunk; }));
    xs.push_back(size_option(
        "connection", "max-unprocessed-bytes", "max-unprocessed-bytes",
        "Reading pauses while the actor holds more unprocessed bytes than "
        "this; at least read-chunk.",
        [conn](options& o) -> std::size_t& {
          return conn(o).max_unprocessed_bytes;
        }));
    xs.push_back(count_option(
        "connection", "max-unprocessed-chunks", "max-unprocessed-chunks",
        "...or more unprocessed chunks than this; reading resumes below half "
        "of both.",
        1, UINT32_MAX, [conn](options& o) -> std::size_t& {
          return conn(o).max_unprocessed_chunks;
        }));
    xs.push_back(size_option(
        "connection", "write-high-watermark", "write-high-watermark",
        "Reading pauses while more than this many bytes wait to be written "
        "to a slow peer...",
        [conn](options& o) -> std::size_t& {
          return conn(o).write_high_watermark;
        }));
    xs.push_back(
        size_option("connection", "write-low-watermark", "write-low-watermark",
                    "...and resumes once the write queue drains below this.",
                    [conn](options& o) -> std::size_t& {
                      return conn(o).write_low_watermark;
                    }));
    xs.push_back(size_option(
        "connection", "write-queue-limit", "write-queue-limit",
        "A write that would queue more than this fails the connection "
        "(write_overflow); at least write-high-watermark.",
        [conn](options& o) -> std::size_t& {
          return conn(o).write_queue_limit;
        }));
    xs.push_back(duration_option(
        "connection", "close-timeout", "close-timeout",
        "Time a graceful close may spend flushing queued bytes before it "
        "closes anyway.",
        [conn](options& o) -> std::chrono::milliseconds& {
          return conn(o).close_timeout;
        }));
    xs.push_back(bool_option(
        "connection", "tcp-nodelay", "tcp-nodelay",
        "Disable Nagle's algorithm, so echoed bytes go out at once.",
        [conn](options& o) -> bool& { return conn(o).tcp_nodelay; }));
    xs.push_back(bool_option(
        "connection", "half-close", "half-close",
        "Keep echoing after a client's FIN until it is answered, instead of "
        "closing once the replies are out.",
        [conn](options& o) -> bool& { return conn(o).half_close; }));
    xs.push_back(bool_option(
        "connection", "handlers-on-io-thread", "handlers-on-io-thread",
        "Run each connection's actor on its socket's I/O thread (faster; "
        "only for handlers that never block).",
        [conn](options& o) -> bool& { return conn(o).handlers_on_io_thread; }));
    xs.push_back(framing_option());
    xs.push_back(bool_option(
        "connection", "keepalive", "keepalive",
        "TCP keepalive: the kernel probes an idle client and resets a dead "
        "one.",
        [conn](options& o) -> bool& { return conn(o).keepalive; }));
    xs.push_back(seconds_option(
        "connection", "keepalive-idle", "keepalive-idle",
        "Idle time before the first keepalive probe; 0s: the system's "
        "(2 hours).",
        [conn](options& o) -> std::chrono::seconds& {
          return conn(o).keepalive_idle;
        }));
    xs.push_back(seconds_option(
        "connection", "keepalive-interval", "keepalive-interval",
        "Time between keepalive probes; 0s: the system's (75 s).",
        [conn](options& o) -> std::chrono::seconds& {
          return conn(o).keepalive_interval;
        }));
    xs.push_back(count_option(
        "connection", "keepalive-count", "keepalive-count",
        "Unanswered keepalive probes before the reset; 0: the system's (9).", 0,
        127,
        [conn](options& o) -> uint32_t& { return conn(o).keepalive_count; }));
    xs.push_back(duration_option(
        "connection", "user-timeout", "user-timeout",
        "Drop a connection whose sent data stays unacknowledged this long "
        "(TCP_USER_TIMEOUT); 0s: the system's retransmission limits.",
        [conn](options& o) -> std::chrono::milliseconds& {
          return conn(o).user_timeout;
        }));
    xs.push_back(size_option(
        "connection", "receive-buffer", "receive-buffer",
        "Kernel receive buffer per connection (SO_RCVBUF); 0: autotuning.",
        [conn](options& o) -> std::size_t& { return conn(o).receive_buffer; }));
    xs.push_back(size_option(
        "connection", "send-buffer", "send-buffer",
        "Kernel send buffer per connection (SO_SNDBUF); 0: autotuning.",
        [conn](options& o) -> std::size_t& { return conn(o).send_buffer; }));
    xs.push_back(bool_option(
        "echo", "ipv6-only", "ipv6-only",
        "An IPv6 listener (host ::) takes only IPv6 clients; false: IPv4 "
        "clients too, as IPv4-mapped addresses.",
        [](options& o) -> bool& { return o.listener.ipv6_only; }));
    xs.push_back(bool_option(
        "echo", "reuse-port", "reuse-port",
        "One acceptor per I/O thread on the port (SO_REUSEPORT): each thread "
        "accepts and serves its own connections. Any process of the same "
        "user can then bind the port too.",
        [](options& o) -> bool& { return o.listener.reuse_port; }));
    xs.push_back(string_option(
        "echo", "unix-path", "unix-path",
        "Listen on this Unix-domain socket instead of host:port ('@name': an "
        "abstract socket). A stale socket file is replaced, a live one or any "
        "other file is an error; the file is removed on exit.",
        [](options& o) -> std::string& { return o.listener.unix_path; },
        "<path>"));
    xs.push_back(
        {"echo", "unix-mode", "unix-mode", "<octal>",
         "Permissions of the unix-path socket file, e.g. 0660 (owner and "
         "group may connect); 0: as the umask leaves them.",
         [](options& o, const raw_value& v) -> std::string {
           // Octal whether written 0660 or 660, quoted or not: a mode is
           // never meant in decimal.
           auto& t = v.text;
           if (t.empty() || t.size() > 5 ||
               t.find_first_not_of("01234567") != std::string::npos)
             return in_quotes(t) + " is not an octal mode (e.g. 0660)";
           auto mode = std::strtoul(t.c_str(), nullptr, 8);
           if (mode > 07777)
             return in_quotes(t) + " is out of range (0-07777)";
           o.listener.unix_mode = static_cast<uint32_t>(mode);
           return {};
         },
         [](options& o) {
           char buf[16];
           std::snprintf(buf, sizeof(buf), "%04o",
                         static_cast<unsigned>(o.listener.unix_mode));
           return std::string{buf};
         }});
    {
      auto proxy = choice_option(
          "echo", "proxy-protocol",
          "Expect a PROXY protocol header (HAProxy's send-proxy or "
          "send-proxy-v2) before anything else, TLS included: off, v1, v2 "
          "or any. The log and each connection then name the client the "
          "header names. Only for a port nothing but the proxy can reach.",
          {"off", "v1", "v2", "any"},
          [](options& o, const std::string& x) {
            tcpactor::from_string(x, o.listener.proxy_protocol);
          },
          [](options& o) {
            return "\"" + tcpactor::to_string(o.listener.proxy_protocol) + "\"";
          });
      proxy.alias = "proxy-protocol";
      xs.push_back(std::move(proxy));
    }
    xs.push_back(duration_option(
        "echo", "proxy-header-timeout", "proxy-header-timeout",
        "Close a connection whose PROXY header is not complete this long "
        "after accept (proxy_header_timeout).",
        [](options& o) -> std::chrono::milliseconds& {
          return o.listener.proxy_header_timeout;
        }));
    auto timeout =
        [&xs,
         conn](const char* key, const char* help,
               std::chrono::milliseconds tcpactor::connection_config::*field) {
          xs.push_back(duration_option(
              "connection", key, key, help,
              [conn, field](options& o) -> std::chrono::milliseconds& {
                return conn(o).*field;
              }));
        };
    timeout("first-byte-timeout",
            "Close a connection that sends nothing this long after it opened "
            "(first_byte_timeout); 0s: off.",
            &tcpactor::connection_config::first_byte_timeout);
    timeout("idle-timeout",
            "Close a connection that sends nothing for this long "
            "(idle_timeout); 0s: off.",
            &tcpactor::connection_config::idle_timeout);
    timeout("write-stall-timeout",
            "Close a connection whose queued replies make no progress for "
            "this long (write_stall_timeout); 0s: off.",
            &tcpactor::connection_config::write_stall_timeout);
    timeout("max-lifetime",
            "Close every connection this long after it opened "
            "(lifetime_exceeded); 0s: off.",
            &tcpactor::connection_config::max_lifetime);
    xs.push_back(duration_option(
        "echo", "drain-timeout", "drain-timeout",
        "On SIGTERM, stop accepting and wait this long for clients to finish "
        "and close before closing the rest.",
        [](options& o) -> std::chrono::milliseconds& {
          return o.drain_timeout;
        }));
    xs.push_back(count_option(
        "scheduler", "max-threads", "scheduler-threads",
        "CAF scheduler threads that run the connection actors.", 1, 1024,
        [](options& o) -> std::size_t& { return o.scheduler_threads; }));
    for (auto& x : tls_specs())
      xs.push_back(std::move(x));
    for (auto& x : backend_specs())
      xs.push_back(std::move(x));
    return xs;
  }();
  return result;
}

const option_spec* find_key(std::string_view section, std::string_view key) {
  for (auto& x : specs())
    if (x.section == section && x.key == key)
      return &x;
  return nullptr;
}

/// Finds an option by its command-line name: full ("echo.port") or alias.
const option_spec* find_flag(std::string_view name) {
  for (auto& x : specs())
    if (x.name() == name || x.alias == name)
      return &x;
  return nullptr;
}

bool known_section(std::string_view name) {
  for (auto& x : specs())
    if (x.section == name)
      return true;
  return false;
}

void note_given(options& o, const option_spec& spec) {
  if (spec.section == "tls" && spec.key != "enabled")
    o.tls_keys_given.push_back(spec.name());
}

bool starts_comment(std::string_view str) {
  return !str.empty() && (str[0] == ';' || str[0] == '#');
}

/// Reads the value after '=': "string" (with backslash escapes), 'atom' or a
/// bare token, optionally followed by a comment.
std::string read_value(std::string_view str, raw_value& out) {
  std::string_view tail;
  if (!str.empty() && (str[0] == '"' || str[0] == '\'')) {
    auto quote = str[0];
    std::size_t i = 1;
    for (; i < str.size() && str[i] != quote; ++i) {
      if (str[i] == '\\' && quote == '"' && i + 1 < str.size()) {
        auto c = str[++i];
        out.text += c == 'n' ? '\n' : c == 't' ? '\t' : c;
      } else {
        out.text += str[i];
      }
    }
    if (i == str.size())
      return "missing closing quote";
    out.quoted = true;
    tail = trim(str.substr(i + 1));
  } else {
    auto end = str.find_first_of(";#");
    out.text = std::string{trim(str.substr(0, end))};
    if (out.text.empty())
      return "missing value";
  }
  if (!tail.empty() && !starts_comment(tail))
    return "unexpected text after the value: " + in_quotes(tail);
  return {};
}

bool load_file(const std::string& path, options& out, std::string& err) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    err = "cannot read config file '" + path + "': Is a directory";
    return false;
  }
  std::ifstream in{path};
  if (!in) {
    err = "cannot read config file '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::string line;
  std::string section;
  std::size_t line_no = 0;
  auto fail = [&](const std::string& what) {
    err = path + ":" + std::to_string(line_no) + ": " + what;
    return false;
  };
  while (std::getline(in, line)) {
    ++line_no;
    auto rest = trim(line);
    if (rest.empty() || starts_comment(rest))
      continue;
    if (rest[0] == '[') {
      auto close = rest.find(']');
      if (close == std::string_view::npos)
        return fail("missing ']' in section header " + in_quotes(rest));
      if (auto tail = trim(rest.substr(close + 1));
          !tail.empty() && !starts_comment(tail))
        return fail("unexpected text after section header: " + in_quotes(tail));
      section = std::string{trim(rest.substr(1, close - 1))};
      if (!known_section(section))
        return fail("unknown section '[" + section +
                    "]' (known: echo, connection, scheduler, tls, backend)");
      continue;
    }
    auto eq = rest.find('=');
    if (eq == std::string_view::npos)
      return fail("expected key=value, got " + in_quotes(rest));
    auto key = trim(rest.substr(0, eq));
    if (section.empty())
      return fail("key " + in_quotes(key) +
                  " must follow a section header such as [echo]");
    // Name an unknown key before judging its value: a typo is the likelier
    // mistake, and its value cannot be judged without knowing its type.
    auto full = section + "." + std::string{key};
    auto spec = find_key(section, key);
    if (!spec)
      return fail("unknown key " + in_quotes(full));
    raw_value val;
    val.in_file = true;
    auto why = read_value(trim(rest.substr(eq + 1)), val);
    if (why.empty())
      why = spec->set(out, val);
    if (!why.empty())
      return fail("bad value for " + in_quotes(full) + ": " + why);
    note_given(out, *spec);
  }
  if (in.bad()) {
    err = "cannot read config file '" + path + "': " + std::strerror(errno);
    return false;
  }
  return true;
}

/// Appends `text` wrapped at 79 columns, each line indented by `indent`.
void wrap(std::string& out, std::string_view text, std::size_t indent) {
  constexpr std::size_t width = 79;
  std::size_t col = 0;
  while (!text.empty()) {
    auto end = text.find(' ');
    auto word = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{}
                                         : text.substr(end + 1);
    if (col > 0 && col + 1 + word.size() > width) {
      out += '\n';
      col = 0;
    }
    if (col == 0) {
      out.append(indent, ' ');
      col = indent;
    } else {
      out += ' ';
      ++col;
    }
    out += word;
    col += word.size();
  }
  out += '\n';
}

/// Reads the first line of `path` without its line break.
bool read_first_line(const std::string& path, std::string& out) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    errno = EISDIR;
    return false;
  }
  std::ifstream in{path};
  if (!in)
    return false;
  std::getline(in, out);
  if (!out.empty() && out.back() == '\r')
    out.pop_back();
  return !in.bad();
}

/// Turns `secret` (a password, or where to find one) into the password.
bool resolve_secret(const options::secret& secret, std::string& out,
                    std::string& err) {
  auto ends_with = [&](std::string_view suffix) {
    return secret.key.size() >= suffix.size() &&
           secret.key.compare(secret.key.size() - suffix.size(), suffix.size(),
                              suffix) == 0;
  };
  if (ends_with("-file")) {
    if (!read_first_line(secret.value, out)) {
      err = secret.key + ": cannot read '" + secret.value +
            "': " + std::strerror(errno);
      return false;
    }
  } else if (ends_with("-env")) {
    auto* value = std::getenv(secret.value.c_str());
    if (value == nullptr) {
      err = secret.key + ": environment variable " + in_quotes(secret.value) +
            " is not set";
      return false;
    }
    out = value;
  } else {
    out = secret.value;
  }
  return true;
}

/// The first tls.* key given with a value other than its default: writing
/// a key's default (`tls.verify-client=none`) asks for nothing, so it must
/// not demand a certificate. "" if none.
std::string first_tls_key_off_default(options& o) {
  options defaults;
  for (auto& name : o.tls_keys_given) {
    auto dot = name.find('.');
    auto* spec = find_key(name.substr(0, dot), name.substr(dot + 1));
    if (spec == nullptr || !spec->get || spec->get(o) != spec->get(defaults))
      return name;
  }
  return {};
}

/// Decides whether TLS is on and fetches the passwords.
bool resolve_tls(options& o, std::string& err) {
  auto& tls = o.listener.tls;
  bool has_identity = !tls.cert_file.empty() || !tls.pkcs12_file.empty();
  switch (o.tls_enabled) {
    case options::tls_switch::on:
      tls.enabled = true;
      break;
    case options::tls_switch::off:
      tls.enabled = false;
      break;
    case options::tls_switch::automatic:
      // Without this check, `tls.verify-client = require` with a forgotten
      // certificate would quietly serve plain TCP to anyone.
      if (auto key = first_tls_key_off_default(o);
          !has_identity && !key.empty()) {
        err = "tls.cert-file: " + key +
              " is set but no certificate is (tls.cert-file and "
              "tls.key-file, or tls.pkcs12-file); set one, or "
              "tls.enabled=false for plain TCP";
        return false;
      }
      tls.enabled = has_identity;
      break;
  }
  if (!tls.enabled)
    return true;
  if (!o.key_password.key.empty() &&
      !resolve_secret(o.key_password, tls.key_password, err))
    return false;
  if (!o.pkcs12_password.key.empty() &&
      !resolve_secret(o.pkcs12_password, tls.pkcs12_password, err))
    return false;
  if (!o.trust_store_password.key.empty() &&
      !resolve_secret(o.trust_store_password, tls.trust_store_password, err))
    return false;
  for (auto& x : tls.sni_certificates)
    x.key_password = tls.key_password;
  return true;
}

/// Parses the node list and decides whether BASP runs over TLS.
bool resolve_backend(options& o, std::string& err) {
  auto certs_given = !o.node.certificate.empty() || !o.node.key.empty() ||
                     !o.node.cafile.empty() || !o.node.capath.empty();
  if (o.backend_nodes.empty()) {
    if (certs_given || o.backend_tls == options::tls_switch::on) {
      err = "backend.nodes: backend TLS settings are set but no back end is";
      return false;
    }
    return true;
  }
  auto nodes = tcpactor::parse_backends(o.backend_nodes, "backend.nodes");
  if (!nodes) {
    err = tcpactor::describe(nodes.error());
    auto prefix = std::string{"invalid_config: "};
    if (err.compare(0, prefix.size(), prefix) == 0)
      err = err.substr(prefix.size());
    return false;
  }
  o.backend.backends = std::move(*nodes);
  switch (o.backend_tls) {
    case options::tls_switch::on:
      o.node.tls = true;
      break;
    case options::tls_switch::off:
      o.node.tls = false;
      break;
    case options::tls_switch::automatic:
      if (certs_given && o.node.certificate.empty()) {
        err = "backend.certificate: other backend TLS settings are set but "
              "no certificate is; set one, or backend.tls=false for plain "
              "BASP";
        return false;
      }
      o.node.tls = !o.node.certificate.empty();
      break;
  }
  if (o.node.tls && !o.backend_passphrase_file.empty() &&
      !read_first_line(o.backend_passphrase_file, o.node.passphrase)) {
    err = "backend.passphrase-file: cannot read '" + o.backend_passphrase_file +
          "': " + std::strerror(errno);
    return false;
  }
  return true;
}

/// One library field name as the daemon's key, or `token` unchanged.
std::string daemon_key(const std::string& token, const options& opts) {
  auto dashed = [](std::string x) {
    std::replace(x.begin(), x.end(), '_', '-');
    return x;
  };
  auto starts = [&](std::string_view prefix) {
    return token.compare(0, prefix.size(), prefix) == 0;
  };
  auto known = [](const std::string& full) {
    auto dot = full.find('.');
    return dot != std::string::npos &&
           find_key(std::string_view{full}.substr(0, dot),
                    std::string_view{full}.substr(dot + 1)) != nullptr;
  };
  std::string_view sni = "listener.tls.sni_certificates[";
  if (starts(sni)) {
    auto n = std::strtoul(token.c_str() + sni.size(), nullptr, 10);
    auto& certs = opts.listener.tls.sni_certificates;
    auto result = "tls.sni #" + std::to_string(n + 1);
    if (n < certs.size())
      result += " (" + certs[n].host + ")";
    return result;
  }
  if (token == "listener.tls")
    return "tls";
  if (starts("node."))
    return "backend." + token.substr(5);
  if (token == "backend_pool.backends")
    return "backend.nodes";
  if (starts("backend_pool."))
    return "backend." + dashed(token.substr(13));
  if (token == "listener.tls.key_password" && !opts.key_password.key.empty())
    return opts.key_password.key;
  if (token == "listener.tls.pkcs12_password" &&
      !opts.pkcs12_password.key.empty())
    return opts.pkcs12_password.key;
  if (token == "listener.tls.trust_store_password" &&
      !opts.trust_store_password.key.empty())
    return opts.trust_store_password.key;
  std::string candidate;
  if (starts("listener.tls."))
    candidate = "tls." + dashed(token.substr(13));
  else if (starts("listener.connection."))
    candidate = dashed(token.substr(9));
  else if (starts("listener."))
    candidate = "echo." + dashed(token.substr(9));
  else if (starts("runtime."))
    candidate = "echo." + dashed(token.substr(8));
  else if (starts("connection."))
    candidate = dashed(token);
  else if (token.find('_') != std::string::npos &&
           token.find('.') == std::string::npos)
    // A bare field name inside the message, e.g. "is required with
    // cert_file": the same section as the error's own key is likeliest.
    for (auto section : {"tls.", "connection.", "echo."})
      if (known(section + dashed(token)))
        return section + dashed(token);
  return known(candidate) ? candidate : token;
}

} // namespace

bool parse(int argc, char** argv, options& out, std::string& err) {
  // --help wins over any mistake next to it: someone asking for help is
  // about to fix that mistake.
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out.help = true;
      return true;
    }
  }
  struct flag_value {
    const option_spec* spec;
    std::string flag;
    std::string text;
  };
  std::vector<flag_value> given;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.size() <= 2 || arg.substr(0, 2) != "--") {
      err = "unexpected argument " + in_quotes(arg) + " (see --help)";
      return false;
    }
    auto body = arg.substr(2);
    auto eq = body.find('=');
    auto name = body.substr(0, eq);
    auto flag = "--" + std::string{name};
    auto spec = find_flag(name);
    if (!spec && name != "config-file") {
      err = "unknown option " + in_quotes(flag) + " (see --help)";
      return false;
    }
    std::string text;
    if (eq != std::string_view::npos) {
      text = std::string{body.substr(eq + 1)};
    } else if (i + 1 < argc) {
      text = argv[++i];
    } else {
      err = flag + ": missing value";
      return false;
    }
    if (spec) {
      given.push_back({spec, flag, std::move(text)});
    } else if (text.empty()) {
      err = flag + ": missing file name";
      return false;
    } else {
      out.config_file = std::move(text);
    }
  }
  // The file first, so the command line overrides it.
  if (!out.config_file.empty() && !load_file(out.config_file, out, err))
    return false;
  for (auto& x : given) {
    if (auto why = x.spec->set(out, raw_value{x.text}); !why.empty()) {
      err = x.flag + ": " + why;
      return false;
    }
    note_given(out, *x.spec);
  }
  return resolve_tls(out, err) && resolve_backend(out, err);
}

std::string daemon_key_names(const std::string& text, const options& opts) {
  // A token is a run of name characters; one with a '/' is a path and stays
  // as it is, as does anything that names no key of ours.
  auto name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
           c == '.' || c == '-' || c == '[' || c == ']' || c == '/' || c == '~';
  };
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!name_char(text[i])) {
      out += text[i++];
      continue;
    }
    auto j = i;
    while (j < text.size() && name_char(text[j]))
      ++j;
    std::string token = text.substr(i, j - i);
    i = j;
    // Sentence punctuation is no part of the name.
    std::string tail;
    while (!token.empty() && token.back() == '.') {
      tail += '.';
      token.pop_back();
    }
    out +=
        token.find('/') == std::string::npos ? daemon_key(token, opts) : token;
    out += tail;
  }
  return out;
}

std::string help_text() {
  std::string out;
  out += "Usage: tcpactor-echo [options]\n\n";
  wrap(out,
       "A TCP echo daemon: every byte a client sends comes straight back. "
       "Built on tcpactor: one CAF actor per connection, Boost.Asio I/O.",
       0);
  out += '\n';
  wrap(out,
       "Settings come from the built-in defaults, then the file named by "
       "--config-file, then the command line; the last one wins. Without "
       "--config-file no file is read (config/tcpactor-echo.conf in the "
       "source tree lists every key with its default).",
       0);
  out += '\n';
  wrap(out,
       "The file uses CAF's INI format: a [section] line, then key=value "
       "lines; strings are quoted (\"127.0.0.1\"), numbers are not; sizes "
       "take KiB, MiB or GiB; durations need a unit (ns, us, ms, s, min, h); "
       "';' and '#' start comments. Unlike CAF, an unknown section or key "
       "or a bad value is an error that names the file, line and key.",
       0);
  out += '\n';
  wrap(out,
       "Write options as --name=value or --name value. Every option also "
       "takes its full name, section.key (e.g. --echo.port); [tls] and "
       "[backend] options only that (--tls.cert-file, --backend.cafile), "
       "except --backend for backend.nodes.",
       0);
  out += '\n';
  wrap(out,
       "Passwords given on the command line are visible to every local user "
       "in ps and /proc; use the *-password-file or *-password-env options "
       "(or the config file, readable only by the daemon) instead.",
       0);
  out += '\n';
  wrap(out,
       "SIGTERM: stop accepting, let the open connections finish within "
       "--drain-timeout, close the rest, exit 0. SIGINT: the same without "
       "waiting. SIGHUP: read the TLS certificate and key files again for new "
       "connections; if they fail to load, the failure is logged and the "
       "previous ones stay in use. Exit codes: 0 stopped by a signal, 1 "
       "cannot listen, 2 bad option or config file, including TLS files "
       "that are missing, unreadable or do not fit together. At start the "
       "soft limit on open files (RLIMIT_NOFILE) is raised to the hard "
       "limit: each connection holds one descriptor.",
       0);
  out += "\nOptions:\n";
  out += "  -h, --help\n";
  wrap(out, "Print this text and exit.", 6);
  out += "  --config-file <path>\n";
  wrap(out, "Read settings from this file first. Default: none.", 6);
  options defaults;
  std::string section;
  for (auto& x : specs()) {
    if (x.section != section) {
      section = x.section;
      out += "\n[" + section + "]\n";
    }
    out += "  --" + (x.alias.empty() ? x.name() : x.alias);
    if (x.section != "echo" && !x.alias.empty())
      out += ", --" + x.name();
    out += " " + x.type + "\n";
    wrap(out, x.help, 6);
    wrap(out,
         "File: [" + x.section + "] " + x.key +
             ". Default: " + x.get(defaults) + ".",
         6);
  }
  return out;
}

} // namespace tcpactor_echo
