// PROXY protocol v1 and v2 parsing. Stateless: every call parses the bytes
// received so far from the start. A header is at most 536 bytes, so even a
// peer that sends one byte at a time costs at most 536 short parses, and
// there is no resume state to get wrong.

#include "proxy_header.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

namespace tcpactor::proxy {

namespace {

constexpr char v1_sig[] = "PROXY ";
constexpr std::size_t v1_sig_size = 6;
constexpr uint8_t v2_sig[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                              0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t v2_sig_size = sizeof(v2_sig);
constexpr std::size_t v2_fixed_size = 16;

result need_more() {
  return {};
}

result invalid(std::string why) {
  return {result::invalid, 0, std::move(why)};
}

std::string hex(unsigned x) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out = "0x";
  out += digits[(x >> 4) & 0xF];
  out += digits[x & 0xF];
  return out;
}

/// The first bytes as text a log line can hold: printable ASCII as is,
/// the rest as \xHH.
std::string quote(const uint8_t* data, std::size_t size) {
  constexpr std::size_t max_shown = 16;
  std::string out = "\"";
  for (std::size_t i = 0; i < std::min(size, max_shown); ++i) {
    auto ch = data[i];
    if (ch >= 0x20 && ch < 0x7F && ch != '"' && ch != '\\') {
      out += static_cast<char>(ch);
    } else {
      out += "\\x";
      out += hex(ch).substr(2);
    }
  }
  out += size > max_shown ? "\"..." : "\"";
  return out;
}

/// Does `data` agree with `sig` as far as either goes?
bool prefix_of(const uint8_t* data, std::size_t size, const uint8_t* sig,
               std::size_t sig_size) {
  return std::memcmp(data, sig, std::min(size, sig_size)) == 0;
}

bool parse_port(std::string_view text, uint16_t& out) {
  // The spec: a decimal 0-65535, no leading zeros.
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0'))
    return false;
  unsigned value = 0;
  for (auto ch : text) {
    if (ch < '0' || ch > '9')
      return false;
    value = value * 10 + static_cast<unsigned>(ch - '0');
  }
  if (value > 65535)
    return false;
  out = static_cast<uint16_t>(value);
  return true;
}

bool parse_address(std::string_view text, int af,
                   std::array<uint8_t, 16>& out) {
  // inet_pton wants a terminated string; an address fits 45 characters.
  char buf[64];
  if (text.empty() || text.size() >= sizeof(buf))
    return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  out.fill(0);
  return ::inet_pton(af, buf, out.data()) == 1;
}

result parse_v1(const uint8_t* data, std::size_t size, header& out) {
  auto window = std::min(size, max_v1_size);
  std::size_t end = 0; // index of '\r' in "\r\n"
  bool found = false;
  for (std::size_t i = v1_sig_size; i < window; ++i) {
    auto ch = data[i];
    if (ch == '\r') {
      if (i + 1 == window)
        break; // '\n' may follow with the next read
      if (data[i + 1] != '\n')
        return invalid("v1 header has a CR without LF at offset " +
                       std::to_string(i));
      end = i;
      found = true;
      break;
    }
    if (ch < 0x20 || ch > 0x7E)
      return invalid("v1 header has byte " + hex(ch) + " at offset " +
                     std::to_string(i) + " (before any CRLF)");
  }
  if (!found) {
    if (size >= max_v1_size)
      return invalid("v1 header has no CRLF within " +
                     std::to_string(max_v1_size) + " bytes");
    return need_more();
  }
  std::string_view line{reinterpret_cast<const char*>(data) + v1_sig_size,
                        end - v1_sig_size};
  std::vector<std::string_view> fields;
  for (std::size_t pos = 0;;) {
    auto space = line.find(' ', pos);
    fields.push_back(line.substr(pos, space - pos));
    if (space == std::string_view::npos)
      break;
    pos = space + 1;
  }
  header h;
  h.version = 1;
  if (fields[0] == "UNKNOWN") {
    // The spec: whatever follows UNKNOWN up to the CRLF is ignored.
    out = h;
    return {result::done, end + 2, {}};
  }
  int af;
  if (fields[0] == "TCP4") {
    af = AF_INET;
    h.family = 4;
  } else if (fields[0] == "TCP6") {
    af = AF_INET6;
    h.family = 6;
  } else {
    return invalid("v1 protocol '" + std::string{fields[0]} +
                   "' is not TCP4, TCP6 or UNKNOWN");
  }
  if (fields.size() != 5)
    return invalid("v1 " + std::string{fields[0]} + " header has " +
                   std::to_string(fields.size() - 1) +
                   " fields after the protocol, expected 4 (source, "
                   "destination, source port, destination port, one space "
                   "apart)");
  auto fam = std::string{fields[0]};
  if (!parse_address(fields[1], af, h.src_addr))
    return invalid("v1 source address '" + std::string{fields[1]} +
                   "' is not an " + (af == AF_INET ? "IPv4" : "IPv6") +
                   " address (" + fam + ")");
  if (!parse_address(fields[2], af, h.dst_addr))
    return invalid("v1 destination address '" + std::string{fields[2]} +
                   "' is not an " + (af == AF_INET ? "IPv4" : "IPv6") +
                   " address (" + fam + ")");
  if (!parse_port(fields[3], h.src_port))
    return invalid("v1 source port '" + std::string{fields[3]} +
                   "' is not 0-65535 (decimal, no leading zeros)");
  if (!parse_port(fields[4], h.dst_port))
    return invalid("v1 destination port '" + std::string{fields[4]} +
                   "' is not 0-65535 (decimal, no leading zeros)");
  h.local = false;
  out = h;
  return {result::done, end + 2, {}};
}

const char* family_name(unsigned fam) {
  switch (fam) {
    case 0:
      return "AF_UNSPEC";
    case 1:
      return "AF_INET";
    case 2:
      return "AF_INET6";
    default:
      return "AF_UNIX";
  }
}

result parse_v2(const uint8_t* data, std::size_t size, header& out) {
  if (size < v2_fixed_size)
    return need_more();
  unsigned version = data[12] >> 4;
  unsigned command = data[12] & 0x0F;
  unsigned fam = data[13] >> 4;
  unsigned proto = data[13] & 0x0F;
  std::size_t len = (std::size_t{data[14]} << 8) | data[15];
  if (version != 2)
    return invalid("v2 version " + std::to_string(version) + " is not 2");
  if (command > 1)
    return invalid("v2 command " + std::to_string(command) +
                   " is neither LOCAL (0) nor PROXY (1)");
  auto total = v2_fixed_size + len;
  if (total > max_v2_size)
    return invalid("v2 header of " + std::to_string(total) +
                   " bytes exceeds the limit of " +
                   std::to_string(max_v2_size));
  header h;
  h.version = 2;
  // LOCAL: the proxy's own connection (a health check); the spec says to
  // ignore the address block, so it is not checked.
  if (command == 1) {
    if (fam > 3)
      return invalid("v2 address family " + std::to_string(fam) +
                     " is unknown");
    if (proto > 2)
      return invalid("v2 transport protocol " + std::to_string(proto) +
                     " is unknown");
    static constexpr std::size_t needs[] = {0, 12, 36, 216};
    if (len < needs[fam])
      return invalid("v2 address length " + std::to_string(len) +
                     " too short for " + family_name(fam) + " (needs " +
                     std::to_string(needs[fam]) + ")");
    if ((fam == 1 || fam == 2) && proto != 1)
      return invalid(std::string{"v2 transport protocol "} +
                     (proto == 2 ? "DGRAM" : "UNSPEC") + " with " +
                     family_name(fam) + " on a stream listener");
    if (size < total)
      return need_more();
    std::size_t pos = v2_fixed_size;
    if (fam == 1 || fam == 2) {
      std::size_t n = fam == 1 ? 4 : 16;
      h.family = fam == 1 ? 4 : 6;
      std::memcpy(h.src_addr.data(), data + pos, n);
      std::memcpy(h.dst_addr.data(), data + pos + n, n);
      pos += 2 * n;
      h.src_port = static_cast<uint16_t>((data[pos] << 8) | data[pos + 1]);
      h.dst_port = static_cast<uint16_t>((data[pos + 2] << 8) | data[pos + 3]);
      pos += 4;
      h.local = false;
    } else {
      // AF_UNSPEC: the spec says to use the socket's endpoints and discard
      // the block; AF_UNIX paths do not fit a TCP endpoint, so likewise.
      pos += needs[fam];
    }
    // TLVs (ALPN, authority, SSL, ...) are skipped, but must tile the rest
    // exactly: a TLV that overruns the header means the length is wrong.
    if (fam != 0) {
      while (pos < total) {
        if (total - pos < 3)
          return invalid("v2 TLV at offset " + std::to_string(pos) +
                         " is truncated (" + std::to_string(total - pos) +
                         " bytes left, a TLV takes at least 3)");
        std::size_t tlv_len = (std::size_t{data[pos + 1]} << 8) | data[pos + 2];
        if (tlv_len > total - pos - 3)
          return invalid("v2 TLV type " + hex(data[pos]) + " of length " +
                         std::to_string(tlv_len) + " overruns the header (" +
                         std::to_string(total - pos - 3) + " bytes left)");
        pos += 3 + tlv_len;
      }
    }
  } else if (size < total) {
    return need_more();
  }
  out = h;
  return {result::done, total, {}};
}

} // namespace

result parse(const uint8_t* data, std::size_t size, accept which, header& out) {
  if (size == 0)
    return need_more();
  auto v1_ok = which != accept::v2 &&
               prefix_of(data, size, reinterpret_cast<const uint8_t*>(v1_sig),
                         v1_sig_size);
  auto v2_ok =
      which != accept::v1 && prefix_of(data, size, v2_sig, v2_sig_size);
  if (v1_ok) {
    if (size < v1_sig_size)
      return need_more();
    return parse_v1(data, size, out);
  }
  if (v2_ok) {
    if (size < v2_sig_size)
      return need_more();
    return parse_v2(data, size, out);
  }
  switch (which) {
    case accept::v1:
      return invalid("bad v1 signature: got " + quote(data, size) +
                     ", expected \"PROXY \"");
    case accept::v2:
      return invalid("bad v2 signature: got " + quote(data, size));
    default:
      return invalid("no PROXY header: got " + quote(data, size) +
                     ", neither a v1 nor a v2 signature");
  }
}

std::string address_to_string(uint8_t family,
                              const std::array<uint8_t, 16>& addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(family == 4 ? AF_INET : AF_INET6, addr.data(), buf,
                  sizeof(buf)) == nullptr)
    return {};
  return buf;
}

} // namespace tcpactor::proxy
