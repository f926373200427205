#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace tcpactor::log {

/// Severity, lowest first. Debian builds CAF without its logger, so tcpactor
/// brings this small one: one line per event on stderr.
enum class level { trace, debug, info, warning, error, quiet };

/// Parses "trace", "debug", "info", "warning", "error" or "quiet".
bool from_string(std::string_view str, level& out);
std::string to_string(level x);

/// Messages below `x` are dropped. Default: warning.
void set_level(level x);
level current_level() noexcept;

/// True if a message of level `x` would be written.
bool enabled(level x) noexcept;

/// How a line looks. Every format carries the same facts: the time (RFC 3339,
/// UTC, milliseconds), the level, the event name, the connection id and peer
/// where there is one, the close reason where there is one, and the message.
/// - `text` (default): "<time> <LEVEL> <msg>", for people; the message
///   already names connection and peer.
/// - `json`: one JSON object per line (JSON Lines), e.g.
///   {"time":"2026-12-05T07:08:35.123Z","level":"info",
///    "event":"connection_closed","conn_id":3,"peer":"127.0.0.1:5000",
///    "reason":"peer_closed","msg":"connection 3 closed ..."}; strings are
///   JSON-escaped and invalid UTF-8 becomes U+FFFD.
/// - `logfmt`: key=value pairs in the same order; a value with a space, `=`,
///   `"`, a control character or nothing at all is double-quoted with
///   backslash escapes.
enum class format { text, json, logfmt };

/// Parses "text", "json" or "logfmt".
bool from_string(std::string_view str, format& out);
std::string to_string(format x);

/// Default: text.
void set_format(format x);
format current_format() noexcept;

/// One log line's content.
struct record {
  level severity = level::info;
  /// What happened, as a stable snake_case name ("connection_opened",
  /// "listening", ...); "message" for plain `write(level, msg)` lines.
  std::string_view event = "message";
  std::string_view message;
  /// The connection it concerns; 0: none.
  uint64_t conn_id = 0;
  /// "host:port" of the connection's peer; empty: none.
  std::string_view peer;
  /// Why a connection closed or failed (an errc name); empty: none.
  std::string_view reason;
};

/// Renders `r` in format `f` at time `t`, without the trailing newline.
std::string render(format f, const record& r,
                   std::chrono::system_clock::time_point t);

/// Writes `r` as one line in the current format, if its level is enabled
/// (thread-safe).
void write(const record& r);

/// Writes one line with event "message" (thread-safe).
void write(level x, std::string_view msg);

/// Writes one line named `event` (thread-safe).
void write(level x, std::string_view event, std::string_view msg);

} // namespace tcpactor::log
