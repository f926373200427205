#pragma once

// The PROXY protocol header (HAProxy's proxy-protocol.txt, v1 text and v2
// binary): pure parsing, no socket, no Asio, no CAF, so the fuzzer and the
// unit tests drive it with bytes alone.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace tcpactor::proxy {

/// Which versions a parse accepts.
enum class accept : uint8_t { v1 = 1, v2 = 2, any = 3 };

/// The longest v1 header: "PROXY TCP6 " + two full IPv6 addresses + two
/// ports + spaces + CRLF (the spec's figure).
constexpr std::size_t max_v1_size = 107;

/// The longest v2 header we take: 16 bytes of fixed part, then addresses and
/// TLVs. The spec lets the length field say 64 KiB; we hold at most this
/// many bytes per connection while the header arrives (the minimum TCP MSS,
/// which the spec names as what a sender can count on arriving at once), so
/// a header larger than that is refused. IPv6 addresses take 36 bytes, so
/// 484 bytes remain for TLVs.
constexpr std::size_t max_v2_size = 536;

/// The most bytes a header can take, whatever the version.
constexpr std::size_t max_size = max_v2_size;

/// What a header says about the connection.
struct header {
  /// 1 or 2.
  uint8_t version = 0;
  /// True: keep the socket's own addresses (v1 `UNKNOWN`, v2 `LOCAL`, v2
  /// `PROXY` with an unspecified or Unix family).
  bool local = true;
  /// 4 or 6 when not `local`.
  uint8_t family = 0;
  /// Network byte order; 4 bytes used for IPv4.
  std::array<uint8_t, 16> src_addr{};
  std::array<uint8_t, 16> dst_addr{};
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
};

/// The outcome of one parse of the bytes received so far.
struct result {
  enum status_t : uint8_t {
    /// Valid so far; more bytes are needed.
    need_more,
    /// A complete header: `consumed` bytes of the input are its, the rest
    /// belongs to the stream after it.
    done,
    /// Not a valid header; `error` says why. Final.
    invalid,
  };
  status_t status = need_more;
  std::size_t consumed = 0;
  std::string error;
};

/// Parses `data[0, size)`, the first bytes of a connection. Call again with
/// the same bytes and more appended after `need_more`; at most `max_size`
/// bytes are ever needed, so a caller that holds `max_size` bytes and still
/// gets `need_more` has a bug. Fills `out` on `done`.
result parse(const uint8_t* data, std::size_t size, accept which, header& out);

/// "1.2.3.4" or "2001:db8::1" of `family` (4 or 6) bytes `addr`.
std::string address_to_string(uint8_t family,
                              const std::array<uint8_t, 16>& addr);

} // namespace tcpactor::proxy
