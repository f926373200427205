#include "tcpactor/log.hpp"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace tcpactor::log {

namespace {

std::atomic<level> current{level::warning};
std::atomic<format> current_fmt{format::text};
std::mutex out_mtx;

constexpr const char* names[] = {"trace",   "debug", "info",
                                 "warning", "error", "quiet"};

constexpr const char* format_names[] = {"text", "json", "logfmt"};

/// "2026-12-05T07:08:35.123Z"
void stamp(std::string& out, std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto ms_total = duration_cast<milliseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ms_total / 1000);
  auto ms = static_cast<int>(ms_total % 1000);
  if (ms < 0) { // before 1970: floor, not truncate
    ms += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  auto n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", ms);
  out += buf;
}

/// Length of the valid UTF-8 sequence at `s[i]`, or 0 if it is none.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  auto c = b(i);
  std::size_t len;
  uint32_t min;
  if (c < 0x80)
    return 1;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size())
    return 0;
  uint32_t cp = c & (0x7F >> len);
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  // Overlong forms, surrogates and code points past U+10FFFF are invalid.
  if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return 0;
  return len;
}

void hex_escape(std::string& out, unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "\\u%04x", c);
  out += buf;
}

/// Escapes `s` for the inside of a JSON string (RFC 8259), or of a logfmt
/// quoted value, which uses the same escapes. Invalid UTF-8 becomes U+FFFD,
/// so the line always parses.
void escape(std::string& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          hex_escape(out, c);
        } else if (c >= 0x80) {
          auto len = utf8_length(s, i);
          if (len == 0) {
            out += "\xEF\xBF\xBD"; // U+FFFD
            ++i;
            continue;
          }
          out.append(s.data() + i, len);
          i += len;
          continue;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
}

void json_field(std::string& out, const char* key, std::string_view value) {
  out += ",\"";
  out += key;
  out += "\":\"";
  escape(out, value);
  out += '"';
}

bool logfmt_needs_quotes(std::string_view s) {
  if (s.empty())
    return true;
  for (auto ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == '=' || c == '"' || c == '\\' || c == 0x7F ||
        c >= 0x80)
      return true;
  }
  return false;
}

void logfmt_field(std::string& out, const char* key, std::string_view value) {
  if (!out.empty())
    out += ' ';
  out += key;
  out += '=';
  if (!logfmt_needs_quotes(value)) {
    out += value;
    return;
  }
  out += '"';
  escape(out, value);
  out += '"';
}

} // namespace

bool from_string(std::string_view str, level& out) {
  for (int i = 0; i < 6; ++i)
    if (str == names[i]) {
      out = static_cast<level>(i);
      return true;
    }
  return false;
}

std::string to_string(level x) {
  return names[static_cast<int>(x)];
}

bool from_string(std::string_view str, format& out) {
  for (int i = 0; i < 3; ++i)
    if (str == format_names[i]) {
      out = static_cast<format>(i);
      return true;
    }
  return false;
}

std::string to_string(format x) {
  return format_names[static_cast<int>(x)];
}

void set_level(level x) {
  current = x;
}

level current_level() noexcept {
  return current;
}

void set_format(format x) {
  current_fmt = x;
}

format current_format() noexcept {
  return current_fmt.load(std::memory_order_relaxed);
}

bool enabled(level x) noexcept {
  return x >= current.load(std::memory_order_relaxed) && x != level::quiet;
}

std::string render(format f, const record& r,
                   std::chrono::system_clock::time_point t) {
  std::string out;
  out.reserve(96 + r.message.size());
  auto lvl = names[static_cast<int>(r.severity)];
  switch (f) {
    case format::text: {
      stamp(out, t);
      char buf[16];
      std::snprintf(buf, sizeof(buf), " %-7s ", lvl);
      out += buf;
      // Control characters would let a message forge a line of its own.
      for (auto ch : r.message) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 && c != '\t')
          hex_escape(out, c);
        else
          out += ch;
      }
      break;
    }
    case format::json: {
      out += "{\"time\":\"";
      stamp(out, t);
      out += '"';
      json_field(out, "level", lvl);
      json_field(out, "event", r.event);
      if (r.conn_id != 0) {
        out += ",\"conn_id\":";
        out += std::to_string(r.conn_id);
      }
      if (!r.peer.empty())
        json_field(out, "peer", r.peer);
      if (!r.reason.empty())
        json_field(out, "reason", r.reason);
      json_field(out, "msg", r.message);
      out += '}';
      break;
    }
    case format::logfmt: {
      std::string when;
      stamp(when, t);
      logfmt_field(out, "time", when);
      logfmt_field(out, "level", lvl);
      logfmt_field(out, "event", r.event);
      if (r.conn_id != 0)
        logfmt_field(out, "conn_id", std::to_string(r.conn_id));
      if (!r.peer.empty())
        logfmt_field(out, "peer", r.peer);
      if (!r.reason.empty())
        logfmt_field(out, "reason", r.reason);
      logfmt_field(out, "msg", r.message);
      break;
    }
  }
  return out;
}

void write(const record& r) {
  if (!enabled(r.severity))
    return;
  auto line = render(current_format(), r, std::chrono::system_clock::now());
  line += '\n';
  // One fwrite per line keeps lines whole; the lock keeps them ordered.
  std::lock_guard<std::mutex> guard{out_mtx};
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void write(level x, std::string_view msg) {
  write(x, "message", msg);
}

void write(level x, std::string_view event, std::string_view msg) {
  record r;
  r.severity = x;
  r.event = event;
  r.message = msg;
  write(r);
}

} // namespace tcpactor::log
