#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace tcpactor {

/// How a connection cuts its byte stream into messages. With a codec, the
/// service receives one `bytes` message per whole frame (never split, never
/// merged, whatever the reads), and every reply or write is framed on the
/// way out. `raw` (the default) delivers chunks as read.
///
/// Modeled on Netty's `LengthFieldBasedFrameDecoder` /
/// `LengthFieldPrepender`, `LineBasedFrameDecoder`,
/// `DelimiterBasedFrameDecoder` and `FixedLengthFrameDecoder`, and on
/// Erlang's `{packet, N}`.
struct framing_config {
  enum class codec : uint8_t {
    /// Chunks as read, writes as given.
    raw,
    /// A `header_size`-byte unsigned length, then that many bytes.
    length_prefix,
    /// Bytes up to a delimiter, which is stripped; writes get it appended.
    delimiter,
    /// Frames of exactly `frame_size` bytes.
    exact,
  };

  codec type = codec::raw;

  // -- length_prefix ----------------------------------------------------------

  /// 1, 2, 4 or 8.
  uint8_t header_size = 4;
  /// Network byte order (Erlang's `{packet, N}`, Netty's default).
  bool big_endian = true;
  /// The length counts the header too (some protocols, e.g. Netty's
  /// `lengthAdjustment = -4` setups); off: it counts the payload only.
  bool header_counted = false;

  // -- delimiter --------------------------------------------------------------

  /// Any non-empty byte string. "\n" together with `accept_crlf` is `line`.
  std::string delimiter = "\n";
  /// A frame ending in "\r\n" loses both (Netty's LineBasedFrameDecoder);
  /// only meaningful with the delimiter "\n".
  bool accept_crlf = false;

  // -- exact ------------------------------------------------------------------

  /// Size of every frame, 1 B - `max_frame_size`.
  std::size_t frame_size = 0;

  // -- all codecs -------------------------------------------------------------

  /// Largest payload (for `delimiter`: longest frame without its delimiter)
  /// accepted from the peer or written. A longer one fails the connection
  /// with `errc::frame_too_large`, naming the limit and the announced size;
  /// frames before it are delivered and answered first.
  std::size_t max_frame_size = 1024 * 1024;

  /// Parses the command-line and config-file form:
  /// - `raw`
  /// - `line` (delimiter "\n", accepts "\r\n") and `line:crlf` (delimiter
  ///   "\r\n")
  /// - `length:N[:be|le][:inclusive]`, N in {1, 2, 4, 8}
  /// - `delimiter:TEXT` where TEXT may use `\n`, `\r`, `\t`, `\0`, `\\` and
  ///   `\xHH`
  /// - `exact:N`
  /// - any of them followed by `,max=BYTES` (suffixes k, m allowed).
  /// Errors name `field` and say what was expected.
  static caf::expected<framing_config>
  parse(std::string_view spec, const std::string& field = "framing");

  /// The spec `parse` reads back to an equal config.
  std::string to_string() const;

  /// Checks ranges; the error names `<prefix>.<field>`.
  caf::error validate(const std::string& prefix = "framing") const;

  /// Bytes a frame of `payload` bytes takes on the wire.
  std::size_t wire_size(std::size_t payload) const noexcept;

  friend bool operator==(const framing_config&,
                         const framing_config&) = default;
};

} // namespace tcpactor
