#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>

#include "tcpactor/bytes.hpp"
#include "tcpactor/framing.hpp"

namespace tcpactor {

/// Cuts a byte stream into frames. Knows nothing of sockets or actors: the
/// framing layer feeds it what the stream delivers and the fuzzers feed it
/// anything.
///
/// Memory: at most one partial frame (up to `max_frame_size` plus header or
/// delimiter) and the unread rest of the last `feed`, never more.
class frame_decoder {
public:
  explicit frame_decoder(const framing_config& cfg) noexcept : cfg_(&cfg) {
    // nop
  }

  /// Appends `n` bytes of input behind what is buffered.
  void feed(const char* data, std::size_t n);

  /// The next whole frame, if one is buffered: true and `out` set. False
  /// when more input is needed, or when the input is bad: then `error()` is
  /// set (frame_too_large, frame_invalid), sticky, and no further frame
  /// comes out. Every frame before the bad one comes out first.
  bool next(bytes& out);

  /// The codec this decoder cuts by (the framing layer encodes with it).
  const framing_config& config() const noexcept { return *cfg_; }

  /// Set once the input turned out bad.
  const caf::error& error() const noexcept { return err_; }

  /// The peer ended the stream: an error if part of a frame is buffered
  /// (frame_truncated, naming how much arrived and how much was announced).
  caf::error at_eof() const;

  /// Bytes of input held (a partial frame, or frames not yet taken).
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }

  /// Wire bytes consumed by the frames taken so far (for the fuzzers'
  /// invariant: re-encoding the frames reproduces this much input).
  std::size_t consumed() const noexcept { return consumed_; }

  /// Bytes of the delimiter that ended the last frame `next` returned (for
  /// `accept_crlf`: 1 or 2); 0 for other codecs.
  std::size_t last_delimiter_size() const noexcept { return last_delim_; }

  /// `peer` names the other end in errors ("127.0.0.1:4242").
  void set_peer(std::string peer) { peer_ = std::move(peer); }

private:
  const framing_config* cfg_;
  std::vector<char> buf_;
  std::size_t pos_ = 0;      // first byte not yet part of a taken frame
  std::size_t scanned_ = 0;  // delimiter search resumes here (from pos_)
  std::size_t consumed_ = 0; // total wire bytes of the frames taken
  std::size_t last_delim_ = 0;
  caf::error err_;
  std::string peer_;
};

/// `text` with `\n`, `\r`, `\t`, `\0`, `\\`, ',' and other non-printable
/// bytes escaped, as `framing_config::parse` reads them back.
std::string escape_delimiter(std::string_view text);

/// Frames `payload` for the wire. Appends one or two pieces to `out`: for
/// small payloads one contiguous buffer (one TLS record, one iovec), for
/// large ones a header (or delimiter) piece beside the shared payload, which
/// is not copied. Returns frame_too_large above `max_frame_size` (or what
/// the header can express) and frame_invalid for a payload the peer would
/// read differently (contains the delimiter; wrong size for `exact`).
caf::error encode_frame(const framing_config& cfg, const bytes& payload,
                        std::vector<bytes>& out);

} // namespace tcpactor
