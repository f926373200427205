#pragma once

// The shared driver of the frame codec fuzzers (scripts/fuzz.sh builds and
// runs them). Each target derives a framing_config from the first input
// bytes and hands the rest to `run`, which feeds it to a frame_decoder in
// pieces whose sizes also come from the input and checks after every piece:
//
// - re-encoding the frames taken (encode_frame; for accept_crlf with the
//   delimiter the decoder found) reproduces exactly the first consumed()
//   bytes of the input;
// - consumed() + buffered() == bytes fed, unless an error occurred;
// - buffered() never exceeds one partial frame plus the last piece;
// - an error is one the input justifies (a naive reference decoder agrees),
//   names the peer, is sticky, and no frame comes out after it;
// - at the end no whole frame is left buffered, and at_eof() reports
//   frame_truncated exactly when a partial frame is.
//
// A violation traps; ASan/UBSan catch memory errors and leaks.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "frame_codec.hpp"
#include "tcpactor/errors.hpp"
#include "tcpactor/framing.hpp"

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "invariant violated: %s (%s:%d)\n", #cond,          \
                   __FILE__, __LINE__);                                        \
      __builtin_trap();                                                        \
    }                                                                          \
  } while (false)

namespace fuzz {

using tcpactor::bytes;
using tcpactor::errc;
using tcpactor::frame_decoder;
using tcpactor::framing_config;
using tcpactor::kind;
using codec = framing_config::codec;

/// Reads configuration bytes off the front of the input; zeros once empty.
class input {
public:
  input(const uint8_t* data, std::size_t size)
      : data_(reinterpret_cast<const char*>(data)), size_(size) {
    // nop
  }

  uint8_t byte() noexcept {
    if (size_ == 0)
      return 0;
    --size_;
    return static_cast<uint8_t>(*data_++);
  }

  uint16_t u16() noexcept {
    auto hi = byte();
    return static_cast<uint16_t>(hi << 8 | byte());
  }

  std::string_view rest() const noexcept { return {data_, size_}; }

private:
  const char* data_;
  std::size_t size_;
};

/// Piece sizes: all at once, 1 byte, 1-16 bytes or 1-4096 bytes, from a
/// xorshift generator seeded by input bytes.
class cutter {
public:
  cutter(uint8_t mode, uint16_t seed) : mode_(mode & 3), state_(seed + 1u) {
    // nop
  }

  std::size_t next(std::size_t remaining) noexcept {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    std::size_t n = remaining;
    switch (mode_) {
      case 1:
        n = 1;
        break;
      case 2:
        n = 1 + state_ % 16;
        break;
      case 3:
        n = 1 + state_ % 4096;
        break;
      default:
        break;
    }
    return n < remaining ? n : remaining;
  }

private:
  uint8_t mode_;
  uint32_t state_;
};

/// What a naive decoder makes of the bytes after the last frame taken.
enum class verdict { need_more, frame, too_large, invalid };

inline verdict reference(const framing_config& cfg, std::string_view rest) {
  switch (cfg.type) {
    case codec::length_prefix: {
      std::size_t h = cfg.header_size;
      if (rest.size() < h)
        return verdict::need_more;
      uint64_t value = 0;
      for (std::size_t i = 0; i < h; ++i) {
        auto b =
            static_cast<unsigned char>(rest[cfg.big_endian ? i : h - 1 - i]);
        value = value << 8 | b;
      }
      if (cfg.header_counted && value < h)
        return verdict::invalid;
      auto payload = cfg.header_counted ? value - h : value;
      if (payload > cfg.max_frame_size)
        return verdict::too_large;
      return rest.size() - h >= payload ? verdict::frame : verdict::need_more;
    }
    case codec::delimiter: {
      auto max = cfg.max_frame_size;
      if (cfg.accept_crlf) {
        auto i = rest.find('\n');
        if (i != std::string_view::npos) {
          auto payload = i > 0 && rest[i - 1] == '\r' ? i - 1 : i;
          return payload > max ? verdict::too_large : verdict::frame;
        }
        if (rest.size() <= max)
          return verdict::need_more;
        if (rest.size() == max + 1 && rest[max] == '\r')
          return verdict::need_more;
        return verdict::too_large;
      }
      auto& delim = cfg.delimiter;
      auto i = rest.find(delim);
      if (i != std::string_view::npos)
        return i > max ? verdict::too_large : verdict::frame;
      // Could a delimiter starting at or before `max` still arrive? Only
      // in the last delimiter.size() - 1 bytes, as find() failed.
      auto from =
          rest.size() >= delim.size() ? rest.size() - delim.size() + 1 : 0;
      for (std::size_t s = from; s <= max && s < rest.size(); ++s) {
        auto n = std::min(delim.size(), rest.size() - s);
        if (rest.compare(s, n, delim, 0, n) == 0)
          return verdict::need_more;
      }
      return rest.size() <= max ? verdict::need_more : verdict::too_large;
    }
    case codec::exact:
      return rest.size() >= cfg.frame_size ? verdict::frame
                                           : verdict::need_more;
    default:
      return rest.empty() ? verdict::need_more : verdict::frame;
  }
}

/// Largest partial frame the decoder may hold after handing out all whole
/// frames.
inline std::size_t partial_bound(const framing_config& cfg) {
  switch (cfg.type) {
    case codec::length_prefix:
      return cfg.header_size + cfg.max_frame_size - 1;
    case codec::delimiter:
      return cfg.max_frame_size + (cfg.accept_crlf ? 2 : cfg.delimiter.size()) -
             1;
    case codec::exact:
      return cfg.frame_size - 1;
    default:
      return 0;
  }
}

inline void run(const framing_config& cfg, std::string_view stream,
                cutter cut) {
  // The targets derive valid configs only.
  if (auto err = cfg.validate()) {
    std::fprintf(stderr, "%s\n", tcpactor::describe(err).c_str());
    FUZZ_CHECK(!err);
  }
  auto bound = partial_bound(cfg);
  // For accept_crlf: frames that ended in "\r\n" re-encode with that.
  auto crlf_cfg = cfg;
  crlf_cfg.delimiter = "\r\n";
  crlf_cfg.accept_crlf = false;
  frame_decoder dec{cfg};
  dec.set_peer("fuzz:1");
  std::size_t fed = 0;
  std::size_t reencoded = 0;
  std::size_t buffered = 0;
  bool failed = false;
  while (fed < stream.size()) {
    auto n = cut.next(stream.size() - fed);
    dec.feed(stream.data() + fed, n);
    fed += n;
    FUZZ_CHECK(dec.buffered() == (failed ? buffered : buffered + n));
    // After an error the decoder keeps what it held and takes no more.
    FUZZ_CHECK(failed || dec.buffered() <= bound + n);
    bytes frame;
    while (dec.next(frame)) {
      FUZZ_CHECK(!failed);
      FUZZ_CHECK(frame.size() <= cfg.max_frame_size);
      auto dsize = dec.last_delimiter_size();
      bool crlf = cfg.accept_crlf && dsize == 2;
      if (cfg.type == codec::delimiter)
        FUZZ_CHECK(dsize == cfg.delimiter.size() || crlf);
      else
        FUZZ_CHECK(dsize == 0);
      std::vector<bytes> pieces;
      auto err = encode_frame(crlf ? crlf_cfg : cfg, frame, pieces);
      FUZZ_CHECK(!err);
      if (cfg.type == codec::exact)
        FUZZ_CHECK(pieces.size() == 1 && pieces[0].data() == frame.data());
      else if (frame.size() < 4096)
        FUZZ_CHECK(pieces.size() == 1);
      else
        FUZZ_CHECK(pieces.size() == 2);
      std::size_t wire = 0;
      for (auto& piece : pieces) {
        FUZZ_CHECK(reencoded + piece.size() <= fed);
        FUZZ_CHECK(std::memcmp(stream.data() + reencoded, piece.data(),
                               piece.size()) == 0);
        reencoded += piece.size();
        wire += piece.size();
      }
      FUZZ_CHECK(wire == cfg.wire_size(frame.size()) + (crlf ? 1 : 0));
      FUZZ_CHECK(reencoded == dec.consumed());
    }
    FUZZ_CHECK(reencoded == dec.consumed());
    buffered = dec.buffered();
    if (auto& err = dec.error()) {
      auto text = tcpactor::describe(err);
      FUZZ_CHECK(text.find("fuzz:1: ") != std::string::npos);
      auto rest = stream.substr(dec.consumed(), fed - dec.consumed());
      if (!failed) {
        // The first time: the input really is bad here.
        FUZZ_CHECK(dec.consumed() + dec.buffered() == fed);
        auto v = reference(cfg, rest);
        if (kind(err) == errc::frame_too_large)
          FUZZ_CHECK(v == verdict::too_large);
        else
          FUZZ_CHECK(kind(err) == errc::frame_invalid && v == verdict::invalid);
        failed = true;
      }
      FUZZ_CHECK(dec.at_eof() == err);
    } else {
      FUZZ_CHECK(dec.consumed() + dec.buffered() == fed);
      FUZZ_CHECK(dec.buffered() <= bound);
    }
  }
  if (!failed) {
    auto rest = stream.substr(dec.consumed());
    FUZZ_CHECK(reference(cfg, rest) == verdict::need_more);
    auto eof = dec.at_eof();
    if (dec.buffered() == 0)
      FUZZ_CHECK(!eof);
    else
      FUZZ_CHECK(kind(eof) == errc::frame_truncated &&
                 tcpactor::describe(eof).find("fuzz:1: ") != std::string::npos);
  }
}

} // namespace fuzz
