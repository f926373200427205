#pragma once

// Small text helpers shared by the apps' option parsers.

#include <string>
#include <string_view>

namespace tcpactor::apps {

/// Returns `str` in single quotes, for error messages.
inline std::string in_quotes(std::string_view str) {
  // Not "'" + std::string{str} + "'": at -O3 GCC 12 reports a false
  // -Wrestrict overlap in operator+(const char*, string&&) (GCC bug 105329).
  std::string out;
  out.reserve(str.size() + 2);
  out += '\'';
  out += str;
  out += '\'';
  return out;
}

} // namespace tcpactor::apps
