#include "frame_codec.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "tcpactor/errors.hpp"

namespace tcpactor {

namespace {

using codec = framing_config::codec;

// Below this, a frame goes out as one buffer: one TLS record, one iovec, and
// the copy costs less than a second piece.
constexpr std::size_t small_payload = 4096;

uint64_t read_length(const char* p, uint8_t size, bool big_endian) noexcept {
  uint64_t result = 0;
  for (uint8_t i = 0; i < size; ++i) {
    auto byte = static_cast<unsigned char>(p[big_endian ? i : size - 1 - i]);
    result = (result << 8) | byte;
  }
  return result;
}

void write_length(char* p, uint64_t value, uint8_t size,
                  bool big_endian) noexcept {
  for (uint8_t i = 0; i < size; ++i) {
    auto shift = 8 * (big_endian ? size - 1 - i : i);
    p[i] = static_cast<char>((value >> shift) & 0xff);
  }
}

// Largest length value a header of `size` bytes holds.
uint64_t max_length_value(uint8_t size) noexcept {
  return size >= 8 ? std::numeric_limits<uint64_t>::max()
                   : (uint64_t{1} << (8 * size)) - 1;
}

// First occurrence of `needle` (non-empty) in [first, last), or nullptr.
const char* find_delimiter(const char* first, const char* last,
                           std::string_view needle) noexcept {
  auto n = static_cast<std::size_t>(last - first);
  if (n < needle.size())
    return nullptr;
  if (needle.size() == 1)
    return static_cast<const char*>(std::memchr(first, needle[0], n));
  // glibc's memmem (two-way) stays linear for any needle.
  return static_cast<const char*>(
      memmem(first, n, needle.data(), needle.size()));
}

std::string printable(std::string_view delim) {
  return "\"" + escape_delimiter(delim) + "\"";
}

std::string too_large(std::size_t size, std::size_t max) {
  return "frame of " + std::to_string(size) + " bytes exceeds max_frame_size " +
         std::to_string(max);
}

// Bytes of the longest delimiter that can end a frame.
std::size_t max_delimiter_size(const framing_config& cfg) noexcept {
  return cfg.accept_crlf ? 2 : cfg.delimiter.size();
}

// Whether a delimiter that ends a frame of at most max_frame_size bytes may
// still start in the last bytes of the `avail` at `first`, which hold no
// whole delimiter; false once the frame is bound to be too large.
bool may_still_end(const char* first, std::size_t avail,
                   const framing_config& cfg) noexcept {
  auto max = cfg.max_frame_size;
  if (cfg.accept_crlf) // "\r\n" right at the limit
    return avail == max + 1 && first[max] == '\r';
  auto& delim = cfg.delimiter;
  auto s = avail >= delim.size() ? avail - delim.size() + 1 : 0;
  for (; s <= max && s < avail; ++s)
    if (std::memcmp(first + s, delim.data(), avail - s) == 0)
      return true;
  return false;
}

} // namespace

// -- frame_decoder ------------------------------------------------------------

void frame_decoder::feed(const char* data, std::size_t n) {
  // After an error nothing comes out any more: keep no more input.
  if (err_ || n == 0)
    return;
  if (pos_ > 0) {
    // Drop the frames taken: the buffer holds at most one partial frame
    // (each byte moves at most once, as it only moves while no frame ends
    // in front of it).
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
  buf_.insert(buf_.end(), data, data + n);
}

bool frame_decoder::next(bytes& out) {
  if (err_)
    return false;
  auto& cfg = *cfg_;
  const char* first = buf_.data() + pos_;
  std::size_t avail = buf_.size() - pos_;
  auto fail = [this](errc code, std::string what) {
    err_ = make_error(code, peer_.empty() ? what : peer_ + ": " + what);
    return false;
  };
  // Takes `payload` bytes at `first + skip` and `wire` bytes off the input.
  auto take = [&](std::size_t skip, std::size_t payload, std::size_t wire) {
    out = bytes{first + skip, payload};
    pos_ += wire;
    consumed_ += wire;
    scanned_ = 0;
    return true;
  };
  bool found = false;
  switch (cfg.type) {
    case codec::raw:
      if (avail > 0)
        found = take(0, avail, avail);
      break;
    case codec::length_prefix: {
      std::size_t h = cfg.header_size;
      if (avail < h)
        break;
      auto value = read_length(first, cfg.header_size, cfg.big_endian);
      if (cfg.header_counted && value < h)
        return fail(errc::frame_invalid,
                    "frame length " + std::to_string(value) +
                        " is smaller than its " + std::to_string(h) +
                        "-byte header, which it includes");
      auto payload = cfg.header_counted ? value - h : value;
      // Compared as uint64_t: an 8-byte length may exceed size_t.
      if (payload > cfg.max_frame_size)
        return fail(errc::frame_too_large,
                    too_large(payload, cfg.max_frame_size));
      if (payload > avail - h)
        break;
      found = take(h, payload, h + payload);
      break;
    }
    case codec::delimiter: {
      auto& delim = cfg.delimiter;
      std::size_t dmax = max_delimiter_size(cfg);
      if (delim.empty())
        return fail(errc::frame_invalid, "empty delimiter");
      // A frame longer than max_frame_size fails: look no further than
      // where its delimiter would have to end.
      auto limit = std::min(avail, cfg.max_frame_size + dmax);
      const char* hit = nullptr;
      if (scanned_ < limit)
        hit = find_delimiter(first + scanned_, first + limit, delim);
      if (hit == nullptr) {
        if (avail > cfg.max_frame_size && !may_still_end(first, avail, cfg))
          return fail(errc::frame_too_large,
                      "no delimiter " + printable(delim) + " within " +
                          std::to_string(cfg.max_frame_size + dmax) +
                          " bytes (max_frame_size " +
                          std::to_string(cfg.max_frame_size) + ")");
        // Resume where a delimiter could still start: the search is linear
        // overall, however the input is cut.
        if (limit + 1 > delim.size())
          scanned_ = std::max(scanned_, limit + 1 - delim.size());
        break;
      }
      auto payload = static_cast<std::size_t>(hit - first);
      std::size_t dsize = delim.size();
      if (cfg.accept_crlf && payload > 0 && hit[-1] == '\r') {
        --payload;
        ++dsize;
      }
      if (payload > cfg.max_frame_size)
        return fail(errc::frame_too_large,
                    too_large(payload, cfg.max_frame_size));
      last_delim_ = dsize;
      found = take(0, payload, payload + dsize);
      break;
    }
    case codec::exact:
      if (cfg.frame_size == 0)
        return fail(errc::frame_invalid, "exact framing with frame_size 0");
      if (avail >= cfg.frame_size)
        found = take(0, cfg.frame_size, cfg.frame_size);
      break;
  }
  if (!found && pos_ == buf_.size() && buf_.capacity() > 0) {
    // Idle: an empty decoder holds no memory.
    std::vector<char>{}.swap(buf_);
    pos_ = 0;
    scanned_ = 0;
  }
  return found;
}

caf::error frame_decoder::at_eof() const {
  if (err_)
    return err_;
  auto& cfg = *cfg_;
  const char* first = buf_.data() + pos_;
  std::size_t avail = buf_.size() - pos_;
  auto fail = [this](std::string what) {
    return make_error(errc::frame_truncated,
                      peer_.empty() ? what : peer_ + ": " + what);
  };
  // Skips the whole frames not taken yet: only a partial one counts.
  switch (cfg.type) {
    case codec::raw:
      return caf::none;
    case codec::length_prefix: {
      std::size_t h = cfg.header_size;
      while (avail > 0) {
        if (avail < h)
          return fail(
              "stream ended inside a frame header: " + std::to_string(avail) +
              " of " + std::to_string(h) + " bytes arrived");
        auto value = read_length(first, cfg.header_size, cfg.big_endian);
        if (cfg.header_counted && value < h)
          return caf::none; // next() reports it
        auto payload = cfg.header_counted ? value - h : value;
        if (payload > avail - h)
          return fail(
              "stream ended inside a frame: " + std::to_string(avail - h) +
              " of " + std::to_string(payload) + " payload bytes arrived");
        first += h + payload;
        avail -= h + payload;
      }
      return caf::none;
    }
    case codec::delimiter: {
      auto& delim = cfg.delimiter;
      if (delim.empty())
        return caf::none;
      while (avail > 0) {
        auto hit = find_delimiter(first, first + avail, delim);
        if (hit == nullptr)
          return fail("stream ended inside a frame: " + std::to_string(avail) +
                      " bytes arrived after the last delimiter " +
                      printable(delim));
        auto n = static_cast<std::size_t>(hit - first) + delim.size();
        first += n;
        avail -= n;
      }
      return caf::none;
    }
    case codec::exact:
      if (cfg.frame_size > 0 && avail % cfg.frame_size != 0)
        return fail("stream ended inside a frame: " +
                    std::to_string(avail % cfg.frame_size) + " of " +
                    std::to_string(cfg.frame_size) + " bytes arrived");
      return caf::none;
  }
  return caf::none;
}

// -- encode_frame -------------------------------------------------------------

caf::error encode_frame(const framing_config& cfg, const bytes& payload,
                        std::vector<bytes>& out) {
  auto n = payload.size();
  switch (cfg.type) {
    case codec::raw:
      if (n > 0)
        out.push_back(payload);
      return caf::none;
    case codec::exact:
      if (n != cfg.frame_size)
        return make_error(errc::frame_invalid,
                          "frame of " + std::to_string(n) +
                              " bytes, but exact framing sends " +
                              std::to_string(cfg.frame_size) + " bytes each");
      out.push_back(payload);
      return caf::none;
    case codec::length_prefix: {
      uint8_t h = cfg.header_size;
      if (n > cfg.max_frame_size)
        return make_error(errc::frame_too_large,
                          too_large(n, cfg.max_frame_size));
      auto max_value = max_length_value(h);
      auto limit = cfg.header_counted ? max_value - h : max_value;
      if (n > limit)
        return make_error(errc::frame_too_large,
                          "frame of " + std::to_string(n) + " bytes exceeds " +
                              "what a " + std::to_string(h) +
                              "-byte length can express (" +
                              std::to_string(limit) + ")");
      uint64_t value = cfg.header_counted ? n + h : n;
      if (n < small_payload) {
        out.push_back(bytes::make(h + n, [&](char* p) {
          write_length(p, value, h, cfg.big_endian);
          if (n > 0)
            std::memcpy(p + h, payload.data(), n);
        }));
      } else {
        out.push_back(bytes::make(
            h, [&](char* p) { write_length(p, value, h, cfg.big_endian); }));
        out.push_back(payload);
      }
      return caf::none;
    }
    case codec::delimiter: {
      auto& delim = cfg.delimiter;
      if (n > cfg.max_frame_size)
        return make_error(errc::frame_too_large,
                          too_large(n, cfg.max_frame_size));
      if (delim.empty())
        return make_error(errc::frame_invalid, "empty delimiter");
      auto view = payload.view();
      if (cfg.accept_crlf) {
        // The peer would cut at any '\n' and strip a '\r' before it.
        if (auto i = view.find('\n'); i != std::string_view::npos)
          return make_error(errc::frame_invalid,
                            "frame contains the delimiter \"\\n\" at offset " +
                                std::to_string(i));
        if (!view.empty() && view.back() == '\r')
          return make_error(errc::frame_invalid,
                            "frame ends in '\\r', which the peer would "
                            "strip as part of \"\\r\\n\"");
      } else {
        if (auto i = view.find(delim); i != std::string_view::npos)
          return make_error(errc::frame_invalid,
                            "frame contains the delimiter " + printable(delim) +
                                " at offset " + std::to_string(i));
        // A self-overlapping delimiter ("aa", "abab") may also start in the
        // payload's tail and end in the appended delimiter.
        if (delim.size() > 1 && n > 0) {
          auto k = std::min(n, delim.size() - 1);
          std::string tail{view.substr(n - k)};
          tail += delim;
          if (auto i = tail.find(delim); i < k)
            return make_error(
                errc::frame_invalid,
                "frame ends in " +
                    printable(std::string_view{tail}.substr(i, k - i)) +
                    ", which the peer would read as the start of "
                    "the delimiter " +
                    printable(delim));
        }
      }
      if (n < small_payload) {
        out.push_back(bytes::make(n + delim.size(), [&](char* p) {
          if (n > 0)
            std::memcpy(p, payload.data(), n);
          std::memcpy(p + n, delim.data(), delim.size());
        }));
      } else {
        out.push_back(payload);
        out.push_back(bytes{delim});
      }
      return caf::none;
    }
  }
  return make_error(errc::frame_invalid, "unknown codec");
}

} // namespace tcpactor
