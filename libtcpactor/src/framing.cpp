#include "tcpactor/framing.hpp"

#include "frame_codec.hpp"

#include <charconv>
#include <limits>
#include <vector>

#include "tcpactor/errors.hpp"

namespace tcpactor {

namespace {

using codec = framing_config::codec;

constexpr std::size_t default_max = 1024 * 1024;
constexpr std::size_t max_max = 1024 * 1024 * 1024;
constexpr std::size_t max_delimiter = 64;

constexpr std::string_view accepted =
    "one of raw, line, line:crlf, length:N[:be|le][:inclusive] (N = 1, 2, 4 "
    "or 8), delimiter:TEXT, exact:N, each optionally followed by ,max=BYTES";

caf::error bad(const std::string& field, const std::string& what) {
  return make_error(errc::invalid_config, field + ": " + what);
}

std::string quote(std::string_view x) {
  return "'" + std::string{x} + "'";
}

// Largest payload a header of `size` bytes can announce.
uint64_t header_capacity(uint8_t size, bool counted) noexcept {
  uint64_t max_value = size >= 8 ? std::numeric_limits<uint64_t>::max()
                                 : (uint64_t{1} << (8 * size)) - 1;
  return counted ? max_value - size : max_value;
}

// Parses a decimal number without sign, whitespace or overflow.
bool parse_number(std::string_view str, uint64_t& out) {
  if (str.empty())
    return false;
  auto [end, ec] = std::from_chars(str.data(), str.data() + str.size(), out);
  return ec == std::errc{} && end == str.data() + str.size();
}

// "64k" -> 65536; false on anything else (or overflow).
bool parse_size(std::string_view str, uint64_t& out) {
  uint64_t unit = 1;
  if (!str.empty()) {
    switch (str.back()) {
      case 'k':
      case 'K':
        unit = 1024;
        break;
      case 'm':
      case 'M':
        unit = 1024 * 1024;
        break;
      default:
        break;
    }
    if (unit != 1)
      str.remove_suffix(1);
  }
  if (!parse_number(str, out))
    return false;
  if (out > std::numeric_limits<uint64_t>::max() / unit)
    return false;
  out *= unit;
  return true;
}

std::string format_size(std::size_t x) {
  if (x != 0 && x % (1024 * 1024) == 0)
    return std::to_string(x / (1024 * 1024)) + "m";
  if (x != 0 && x % 1024 == 0)
    return std::to_string(x / 1024) + "k";
  return std::to_string(x);
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// Reads the escapes of `delimiter:TEXT`; false and `err` on a bad one.
bool unescape(std::string_view text, std::string& out, std::string& err) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
      continue;
    }
    if (i + 1 == text.size()) {
      err = "a lone '\\' at the end";
      return false;
    }
    switch (text[++i]) {
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case '0':
        out += '\0';
        break;
      case '\\':
        out += '\\';
        break;
      case 'x': {
        int hi = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
        int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
          err = "'\\x' needs two hex digits";
          return false;
        }
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        break;
      }
      default:
        err = "unknown escape '\\" + std::string(1, text[i]) + "'";
        return false;
    }
  }
  return true;
}

} // namespace

// The inverse of unescape. ',' is escaped too, so that a delimiter never
// reads as the start of ",max=".
std::string escape_delimiter(std::string_view text) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (char c : text) {
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\0':
        out += "\\0";
        break;
      case '\\':
        out += "\\\\";
        break;
      default: {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u > 0x7e || c == ',') {
          out += "\\x";
          out += digits[u >> 4];
          out += digits[u & 0xf];
        } else {
          out += c;
        }
      }
    }
  }
  return out;
}

namespace {

std::vector<std::string_view> split(std::string_view str, char sep) {
  std::vector<std::string_view> result;
  for (;;) {
    auto i = str.find(sep);
    result.push_back(str.substr(0, i));
    if (i == std::string_view::npos)
      return result;
    str.remove_prefix(i + 1);
  }
}

} // namespace

caf::expected<framing_config> framing_config::parse(std::string_view spec,
                                                    const std::string& field) {
  framing_config result;
  auto whole = std::string{spec};
  // The last ",max=" ends the codec part: a delimiter may contain ','.
  bool has_max = false;
  uint64_t max = 0;
  if (auto i = spec.rfind(",max="); i != std::string_view::npos) {
    auto str = spec.substr(i + 5);
    if (!parse_size(str, max))
      return bad(field, "max " + quote(str) + " in " + quote(whole) +
                            " is not a size in bytes (e.g. 65536, 64k, 1m)");
    has_max = true;
    spec = spec.substr(0, i);
  }
  auto colon = spec.find(':');
  auto name = spec.substr(0, colon);
  auto args = colon == std::string_view::npos ? std::string_view{}
                                              : spec.substr(colon + 1);
  bool has_args = colon != std::string_view::npos;
  if (name == "raw" && !has_args) {
    result.type = codec::raw;
  } else if (name == "line" && (!has_args || args == "crlf")) {
    result.type = codec::delimiter;
    if (has_args) {
      result.delimiter = "\r\n";
    } else {
      result.delimiter = "\n";
      result.accept_crlf = true;
    }
  } else if (name == "length" && has_args) {
    result.type = codec::length_prefix;
    auto parts = split(args, ':');
    uint64_t n = 0;
    if (!parse_number(parts[0], n) || (n != 1 && n != 2 && n != 4 && n != 8))
      return bad(field, "header size " + quote(parts[0]) + " in " +
                            quote(whole) + " is not 1, 2, 4 or 8");
    result.header_size = static_cast<uint8_t>(n);
    bool has_endian = false;
    for (std::size_t i = 1; i < parts.size(); ++i) {
      auto opt = parts[i];
      if ((opt == "be" || opt == "le") && !has_endian) {
        result.big_endian = opt == "be";
        has_endian = true;
      } else if (opt == "inclusive" && !result.header_counted) {
        result.header_counted = true;
      } else {
        return bad(field, "option " + quote(opt) + " in " + quote(whole) +
                              " is not one of be, le, inclusive (each at "
                              "most once, be and le not both)");
      }
    }
    // Erlang's {packet, 2}: without an explicit max, the most the header
    // can express.
    if (!has_max)
      result.max_frame_size = static_cast<std::size_t>(std::min<uint64_t>(
          result.max_frame_size,
          header_capacity(result.header_size, result.header_counted)));
  } else if (name == "delimiter" && has_args) {
    result.type = codec::delimiter;
    std::string delim;
    std::string err;
    if (!unescape(args, delim, err))
      return bad(field, "delimiter " + quote(args) + " in " + quote(whole) +
                            ": " + err +
                            "; escapes are \\n \\r \\t \\0 \\\\ and \\xHH");
    if (delim.empty())
      return bad(field, "delimiter in " + quote(whole) + " must not be empty");
    result.delimiter = std::move(delim);
  } else if (name == "exact" && has_args) {
    result.type = codec::exact;
    uint64_t n = 0;
    if (!parse_size(args, n) || n == 0 || n > max_max)
      return bad(field, "frame size " + quote(args) + " in " + quote(whole) +
                            " is not a size of 1 B - 1 GiB");
    result.frame_size = static_cast<std::size_t>(n);
    if (!has_max && result.frame_size > result.max_frame_size)
      result.max_frame_size = result.frame_size;
  } else {
    return bad(field, quote(whole) + " is not " + std::string{accepted});
  }
  if (has_max) {
    if (max == 0 || max > max_max)
      return bad(field, "max " + quote(format_size(max)) + " in " +
                            quote(whole) + " must be 1 B - 1 GiB");
    result.max_frame_size = static_cast<std::size_t>(max);
  }
  if (auto err = result.validate(field))
    return err;
  return result;
}

std::string framing_config::to_string() const {
  std::string result;
  switch (type) {
    case codec::raw:
      result = "raw";
      break;
    case codec::length_prefix:
      result = "length:" + std::to_string(header_size);
      if (!big_endian)
        result += ":le";
      if (header_counted)
        result += ":inclusive";
      // parse() lowers the default max to what a small header can express.
      if (max_frame_size !=
          std::min<uint64_t>(default_max,
                             header_capacity(header_size, header_counted)))
        result += ",max=" + format_size(max_frame_size);
      return result;
    case codec::delimiter:
      if (delimiter == "\n" && accept_crlf)
        result = "line";
      else if (delimiter == "\r\n" && !accept_crlf)
        result = "line:crlf";
      else
        result = "delimiter:" + escape_delimiter(delimiter);
      break;
    case codec::exact:
      result = "exact:" + std::to_string(frame_size);
      // parse() raises the default max to an exact size above it.
      if (max_frame_size != std::max(default_max, frame_size))
        result += ",max=" + format_size(max_frame_size);
      return result;
  }
  if (max_frame_size != default_max)
    result += ",max=" + format_size(max_frame_size);
  return result;
}

caf::error framing_config::validate(const std::string& prefix) const {
  auto p = prefix + ".";
  if (max_frame_size < 1 || max_frame_size > max_max)
    return bad(p + "max_frame_size", "must be 1 B - 1 GiB (is " +
                                         std::to_string(max_frame_size) + ")");
  switch (type) {
    case codec::raw:
      break;
    case codec::length_prefix: {
      if (header_size != 1 && header_size != 2 && header_size != 4 &&
          header_size != 8)
        return bad(p + "header_size", "must be 1, 2, 4 or 8 (is " +
                                          std::to_string(header_size) + ")");
      auto cap = header_capacity(header_size, header_counted);
      if (max_frame_size > cap)
        return bad(p + "max_frame_size",
                   "is " + std::to_string(max_frame_size) + ", but a " +
                       std::to_string(header_size) + "-byte length" +
                       (header_counted ? " that includes the header" : "") +
                       " can express at most " + std::to_string(cap) +
                       " bytes of payload");
      break;
    }
    case codec::delimiter:
      if (delimiter.empty())
        return bad(p + "delimiter", "must not be empty");
      if (delimiter.size() > max_delimiter)
        return bad(p + "delimiter",
                   "must be at most " + std::to_string(max_delimiter) +
                       " bytes (is " + std::to_string(delimiter.size()) + ")");
      if (accept_crlf && delimiter != "\n")
        return bad(p + "accept_crlf", "needs the delimiter \"\\n\" (is \"" +
                                          escape_delimiter(delimiter) + "\")");
      break;
    case codec::exact:
      if (frame_size < 1 || frame_size > max_frame_size)
        return bad(p + "frame_size", "must be 1 B - max_frame_size (" +
                                         std::to_string(max_frame_size) +
                                         "), is " + std::to_string(frame_size));
      break;
    default:
      return bad(p + "type",
                 "unknown codec " + std::to_string(static_cast<int>(type)));
  }
  return caf::none;
}

std::size_t framing_config::wire_size(std::size_t payload) const noexcept {
  switch (type) {
    case codec::length_prefix:
      return header_size + payload;
    case codec::delimiter:
      return payload + delimiter.size();
    default:
      return payload;
  }
}

} // namespace tcpactor
