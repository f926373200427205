#pragma once

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

/// Writes one line "<time> <LEVEL> <msg>" (thread-safe).
void write(level x, std::string_view msg);

} // namespace tcpactor::log
