#include "proxy_header.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/test/unit_test.hpp>

using namespace tcpactor;
using namespace std::literals;
using proxy::accept;
using proxy::result;

namespace {

using byte_vec = std::vector<uint8_t>;

byte_vec text(std::string_view str) {
  return byte_vec(str.begin(), str.end());
}

const byte_vec v2_sig = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/// A v2 header: signature, version/command, family/protocol, length, body.
byte_vec v2(uint8_t ver_cmd, uint8_t fam, const byte_vec& body,
            int length = -1) {
  auto out = v2_sig;
  out.push_back(ver_cmd);
  out.push_back(fam);
  auto len = length < 0 ? body.size() : static_cast<std::size_t>(length);
  out.push_back(static_cast<uint8_t>(len >> 8));
  out.push_back(static_cast<uint8_t>(len & 0xFF));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

/// IPv4 address block: 192.0.2.1:51000 -> 198.51.100.7:443.
byte_vec inet_block() {
  return {192, 0, 2, 1, 198, 51, 100, 7, 0xC7, 0x38, 0x01, 0xBB};
}

/// IPv6 address block: 2001:db8::1:51000 -> 2001:db8::2:443.
byte_vec inet6_block() {
  byte_vec out(36, 0);
  out[0] = 0x20, out[1] = 0x01, out[2] = 0x0d, out[3] = 0xb8, out[15] = 1;
  out[16] = 0x20, out[17] = 0x01, out[18] = 0x0d, out[19] = 0xb8, out[31] = 2;
  out[32] = 0xC7, out[33] = 0x38, out[34] = 0x01, out[35] = 0xBB;
  return out;
}

byte_vec operator+(byte_vec a, const byte_vec& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

result parse_all(const byte_vec& in, accept which, proxy::header& h) {
  return proxy::parse(in.data(), in.size(), which, h);
}

/// Feeds `in` one byte more at a time, as a peer sending byte by byte
/// would: every prefix before the decision must say need_more, and the
/// decision must be the one the whole input gives.
result parse_bytewise(const byte_vec& in, accept which, proxy::header& h) {
  for (std::size_t n = 1; n <= in.size(); ++n) {
    auto res = proxy::parse(in.data(), n, which, h);
    if (res.status != result::need_more)
      return res;
  }
  return proxy::parse(in.data(), in.size(), which, h);
}

std::string src(const proxy::header& h) {
  return proxy::address_to_string(h.family, h.src_addr);
}

std::string dst(const proxy::header& h) {
  return proxy::address_to_string(h.family, h.dst_addr);
}

/// The error a whole input gives (fails the test if it is accepted).
std::string error_of(const byte_vec& in, accept which = accept::any) {
  proxy::header h;
  auto res = parse_all(in, which, h);
  BOOST_TEST_REQUIRE(res.status == result::invalid);
  // Byte by byte it must fail too, never accept first. (The text may
  // differ: a bad signature quotes the bytes seen when it was spotted.)
  auto slow = parse_bytewise(in, which, h);
  BOOST_TEST(slow.status == result::invalid);
  return res.error;
}

bool contains(const std::string& str, std::string_view what) {
  return str.find(what) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_SUITE(proxy_header_tests)

BOOST_AUTO_TEST_CASE(v1_tcp4_names_both_ends_and_leaves_the_rest) {
  auto in = text("PROXY TCP4 192.0.2.1 198.51.100.7 51000 443\r\nGET /");
  for (auto which : {accept::v1, accept::any}) {
    proxy::header h;
    auto res = parse_all(in, which, h);
    BOOST_TEST_REQUIRE(res.status == result::done, res.error);
    BOOST_TEST(res.consumed == in.size() - 5);
    BOOST_TEST(h.version == 1);
    BOOST_TEST(!h.local);
    BOOST_TEST(h.family == 4);
    BOOST_TEST(src(h) == "192.0.2.1");
    BOOST_TEST(dst(h) == "198.51.100.7");
    BOOST_TEST(h.src_port == 51000);
    BOOST_TEST(h.dst_port == 443);
  }
}

BOOST_AUTO_TEST_CASE(v1_tcp6) {
  auto in = text("PROXY TCP6 2001:db8::1 ::1 1 65535\r\n");
  proxy::header h;
  auto res = parse_bytewise(in, accept::any, h);
  BOOST_TEST_REQUIRE(res.status == result::done, res.error);
  BOOST_TEST(res.consumed == in.size());
  BOOST_TEST(h.family == 6);
  BOOST_TEST(src(h) == "2001:db8::1");
  BOOST_TEST(dst(h) == "::1");
  BOOST_TEST(h.src_port == 1);
  BOOST_TEST(h.dst_port == 65535);
}

BOOST_AUTO_TEST_CASE(v1_longest_headers_are_accepted) {
  // The spec's worst case is UNKNOWN with two full IPv6 addresses: 107.
  auto addr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"s;
  auto tail = " " + addr + " " + addr + " 65535 65535\r\n";
  auto in = text("PROXY UNKNOWN" + tail);
  BOOST_TEST_REQUIRE(in.size() == proxy::max_v1_size);
  proxy::header h;
  auto res = parse_bytewise(in, accept::v1, h);
  BOOST_TEST_REQUIRE(res.status == result::done, res.error);
  BOOST_TEST(res.consumed == 107u);
  in = text("PROXY TCP6" + tail);
  res = parse_bytewise(in, accept::v1, h);
  BOOST_TEST_REQUIRE(res.status == result::done, res.error);
  BOOST_TEST(res.consumed == 104u);
  BOOST_TEST(src(h) == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}

BOOST_AUTO_TEST_CASE(v1_unknown_keeps_the_socket_addresses) {
  for (auto line :
       {"PROXY UNKNOWN\r\n"s, "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"s}) {
    proxy::header h;
    h.local = false;
    auto res = parse_bytewise(text(line + "x"), accept::v1, h);
    BOOST_TEST_REQUIRE(res.status == result::done, res.error);
    BOOST_TEST(res.consumed == line.size());
    BOOST_TEST(h.local);
    BOOST_TEST(h.version == 1);
  }
}

BOOST_AUTO_TEST_CASE(v2_proxy_ipv4) {
  auto in = v2(0x21, 0x11, inet_block()) + text("hello");
  for (auto which : {accept::v2, accept::any}) {
    proxy::header h;
    auto res = parse_bytewise(in, which, h);
    BOOST_TEST_REQUIRE(res.status == result::done, res.error);
    BOOST_TEST(res.consumed == 28u);
    BOOST_TEST(h.version == 2);
    BOOST_TEST(!h.local);
    BOOST_TEST(h.family == 4);
    BOOST_TEST(src(h) == "192.0.2.1");
    BOOST_TEST(dst(h) == "198.51.100.7");
    BOOST_TEST(h.src_port == 51000);
    BOOST_TEST(h.dst_port == 443);
  }
}

BOOST_AUTO_TEST_CASE(v2_proxy_ipv6) {
  auto in = v2(0x21, 0x21, inet6_block());
  proxy::header h;
  auto res = parse_bytewise(in, accept::v2, h);
  BOOST_TEST_REQUIRE(res.status == result::done, res.error);
  BOOST_TEST(res.consumed == 52u);
  BOOST_TEST(h.family == 6);
  BOOST_TEST(src(h) == "2001:db8::1");
  BOOST_TEST(dst(h) == "2001:db8::2");
  BOOST_TEST(h.src_port == 51000);
  BOOST_TEST(h.dst_port == 443);
}

BOOST_AUTO_TEST_CASE(v2_tlvs_are_skipped) {
  // ALPN "h2", authority "example.com", a NOOP of length 0.
  byte_vec tlvs = {0x01, 0x00, 0x02, 'h', '2', 0x02, 0x00, 0x0B};
  auto name = text("example.com");
  tlvs.insert(tlvs.end(), name.begin(), name.end());
  tlvs.insert(tlvs.end(), {0x04, 0x00, 0x00});
  auto in = v2(0x21, 0x11, inet_block() + tlvs) + text("rest");
  proxy::header h;
  auto res = parse_bytewise(in, accept::any, h);
  BOOST_TEST_REQUIRE(res.status == result::done, res.error);
  BOOST_TEST(res.consumed == in.size() - 4);
  BOOST_TEST(src(h) == "192.0.2.1");
}

BOOST_AUTO_TEST_CASE(v2_local_keeps_the_socket_addresses) {
  // LOCAL with an address block (ignored) and with none.
  for (auto& in : {v2(0x20, 0x11, inet_block()), v2(0x20, 0x00, {}),
                   v2(0x20, 0xFF, {1, 2, 3})}) {
    proxy::header h;
    h.local = false;
    auto res = parse_bytewise(in, accept::v2, h);
    BOOST_TEST_REQUIRE(res.status == result::done, res.error);
    BOOST_TEST(res.consumed == in.size());
    BOOST_TEST(h.local);
    BOOST_TEST(h.version == 2);
  }
}

BOOST_AUTO_TEST_CASE(v2_unspec_and_unix_keep_the_socket_addresses) {
  for (auto& in :
       {v2(0x21, 0x00, {}), v2(0x21, 0x00, {9, 9, 9}),
        v2(0x21, 0x31, byte_vec(216, 'p')),
        v2(0x21, 0x31, byte_vec(216, 'p') + byte_vec{0x04, 0x00, 0x00})}) {
    proxy::header h;
    auto res = parse_bytewise(in, accept::any, h);
    BOOST_TEST_REQUIRE(res.status == result::done, res.error);
    BOOST_TEST(res.consumed == in.size());
    BOOST_TEST(h.local);
  }
}

BOOST_AUTO_TEST_CASE(v2_header_at_the_size_limit_is_accepted) {
  auto body = inet_block();
  auto pad = proxy::max_v2_size - 16 - body.size() - 3;
  body.insert(body.end(), {0x04, static_cast<uint8_t>(pad >> 8),
                           static_cast<uint8_t>(pad & 0xFF)});
  body.resize(body.size() + pad, 0);
  auto in = v2(0x21, 0x11, body);
  BOOST_TEST_REQUIRE(in.size() == proxy::max_v2_size);
  proxy::header h;
  auto res = parse_all(in, accept::v2, h);
  BOOST_TEST_REQUIRE(res.status == result::done, res.error);
  BOOST_TEST(res.consumed == proxy::max_v2_size);
}

BOOST_AUTO_TEST_CASE(prefixes_need_more) {
  proxy::header h;
  auto whole = v2(0x21, 0x11, inet_block());
  for (auto& in :
       {text("P"), text("PROXY"), text("PROXY TCP4 1.2.3.4"),
        text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), byte_vec{0x0D, 0x0A}, v2_sig,
        byte_vec(whole.begin(), whole.begin() + 27)})
    BOOST_TEST(parse_all(in, accept::any, h).status == result::need_more);
  BOOST_TEST(proxy::parse(nullptr, 0, accept::any, h).status ==
             result::need_more);
}

BOOST_AUTO_TEST_CASE(wrong_signatures_are_named) {
  BOOST_TEST(contains(error_of(text("GET / HTTP/1.1\r\n"), accept::v1),
                      "bad v1 signature: got \"GET / HTTP/1.1\\x0d\\x0a\""));
  BOOST_TEST(
      contains(error_of(text("PROXY TCP4"), accept::v2), "bad v2 signature"));
  BOOST_TEST(contains(error_of(v2(0x21, 0x11, inet_block()), accept::v1),
                      "bad v1 signature"));
  BOOST_TEST(contains(error_of(text("\x16\x03\x01"), accept::any),
                      "neither a v1 nor a v2 signature"));
  BOOST_TEST(
      contains(error_of(text("proxy TCP4"), accept::any), "no PROXY header"));
  BOOST_TEST(contains(error_of(text("PROXYTCP4")), "no PROXY header"));
}

BOOST_AUTO_TEST_CASE(malformed_v1_headers_are_named) {
  struct {
    std::string in;
    std::string_view why;
  } cases[] = {
      {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
       "v1 protocol 'TCP5' is not TCP4, TCP6 or UNKNOWN"},
      {"PROXY \r\n", "v1 protocol '' is not"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "has 3 fields after the protocol"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "has 5 fields"},
      {"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "has 5 fields"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "has 5 fields"},
      {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
       "v1 source address '1.2.3' is not an IPv4 address"},
      {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "source address '::1' is not an IPv4"},
      {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
       "source address '1.2.3.4' is not an IPv6"},
      {"PROXY TCP4 1.2.3.4 256.6.7.8 1 2\r\n",
       "destination address '256.6.7.8' is not an IPv4"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
       "v1 source port '65536' is not 0-65535"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "source port '01'"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "source port '-1'"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 x\r\n", "destination port 'x'"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", "destination port ''"},
      {"PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n", "byte 0x0a at offset 18"},
      {"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", "CR without LF at offset 18"},
      {"PROXY UNKNOWN\0\r\n"s, "byte 0x00 at offset 13"},
      {"PROXY UNKNOWN " + std::string(93, 'x') + "\r\n",
       "no CRLF within 107 bytes"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + std::string(100, ' '),
       "no CRLF within 107 bytes"},
  };
  for (auto& c : cases) {
    BOOST_TEST_CONTEXT("input " << c.in) {
      BOOST_TEST(contains(error_of(text(c.in), accept::v1), c.why),
                 error_of(text(c.in), accept::v1));
    }
  }
}

BOOST_AUTO_TEST_CASE(malformed_v2_headers_are_named) {
  struct {
    byte_vec in;
    std::string_view why;
  } cases[] = {
      {v2(0x11, 0x11, inet_block()), "v2 version 1 is not 2"},
      {v2(0x31, 0x11, inet_block()), "v2 version 3 is not 2"},
      {v2(0x22, 0x11, inet_block()),
       "v2 command 2 is neither LOCAL (0) nor PROXY (1)"},
      {v2(0x21, 0x11, {1, 2, 3}),
       "v2 address length 3 too short for AF_INET (needs 12)"},
      {v2(0x21, 0x21, inet_block()),
       "v2 address length 12 too short for AF_INET6 (needs 36)"},
      {v2(0x21, 0x31, inet6_block()),
       "v2 address length 36 too short for AF_UNIX (needs 216)"},
      {v2(0x21, 0x41, inet_block()), "v2 address family 4 is unknown"},
      {v2(0x21, 0x13, inet_block()), "v2 transport protocol 3 is unknown"},
      {v2(0x21, 0x12, inet_block()), "DGRAM with AF_INET on a stream listener"},
      {v2(0x21, 0x20, inet6_block()), "UNSPEC with AF_INET6"},
      {v2(0x21, 0x11, inet_block(), 525),
       "v2 header of 541 bytes exceeds the limit of 536"},
      {v2(0x20, 0x00, {}, 0xFFFF),
       "v2 header of 65551 bytes exceeds the limit of 536"},
      {v2(0x21, 0x11, inet_block() + byte_vec{0x01, 0x00}),
       "v2 TLV at offset 28 is truncated (2 bytes left"},
      {v2(0x21, 0x11, inet_block() + byte_vec{0x01, 0x00, 0x05, 'a'}),
       "v2 TLV type 0x01 of length 5 overruns the header (1 bytes left)"},
      {v2(0x21, 0x11, inet_block() + byte_vec{0x04, 0x00, 0x00, 0x02}),
       "v2 TLV at offset 31 is truncated"},
  };
  for (auto& c : cases) {
    BOOST_TEST_CONTEXT("case " << c.why) {
      auto err = error_of(c.in, accept::v2);
      BOOST_TEST(contains(err, c.why), err);
    }
  }
}

BOOST_AUTO_TEST_CASE(oversized_v2_is_refused_before_its_body_arrives) {
  // Only the 16 fixed bytes: the length alone decides, nothing is awaited.
  auto in = v2(0x21, 0x11, {}, 4000);
  proxy::header h;
  auto res = parse_all(in, accept::any, h);
  BOOST_TEST(res.status == result::invalid);
}

BOOST_AUTO_TEST_CASE(every_prefix_of_every_valid_header_needs_more) {
  // A decision is never made early: cutting anywhere inside a header gives
  // need_more, whatever follows it in the full input.
  for (auto& in :
       {text("PROXY TCP4 192.0.2.1 198.51.100.7 51000 443\r\n"),
        text("PROXY UNKNOWN\r\n"), v2(0x21, 0x11, inet_block()),
        v2(0x21, 0x21, inet6_block() + byte_vec{0x01, 0x00, 0x01, 'x'}),
        v2(0x20, 0x00, {})}) {
    proxy::header h;
    for (std::size_t n = 0; n < in.size(); ++n)
      BOOST_TEST(proxy::parse(in.data(), n, accept::any, h).status ==
                 result::need_more);
    BOOST_TEST(proxy::parse(in.data(), in.size(), accept::any, h).status ==
               result::done);
  }
}

BOOST_AUTO_TEST_SUITE_END()
