// libFuzzer target: the PROXY protocol header parser (proxy_header.hpp), as
// the socket step drives it: the bytes received so far, parsed again after
// every read. Byte 0 of the input picks the accepted versions (bits 0-1; 0
// counts as any) and how reads are cut (bits 2-3: all at once, byte by
// byte, 1-8 or 1-64 bytes, sizes drawn from byte 1 onwards); the rest is
// the stream. Checked:
//
// - a decision (done or invalid) comes within max_size bytes, and parsing
//   more of the stream never changes it (nor what was consumed);
// - done consumes 1..max_size bytes of a well-formed header: v1 within 107
//   bytes ending in CRLF, v2 exactly 16 + its length field;
// - an accepted address header, written out again, parses to the same
//   addresses (v1 as text, v2 as binary);
// - invalid always says why.
//
// A violation traps; ASan/UBSan catch memory errors and leaks.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "proxy_header.hpp"

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "invariant violated: %s (%s:%d)\n", #cond,          \
                   __FILE__, __LINE__);                                        \
      __builtin_trap();                                                        \
    }                                                                          \
  } while (false)

namespace {

using tcpactor::proxy::accept;
using tcpactor::proxy::header;
using tcpactor::proxy::result;
namespace proxy = tcpactor::proxy;

bool same(const header& a, const header& b) {
  if (a.local != b.local)
    return false;
  if (a.local)
    return true;
  std::size_t n = a.family == 4 ? 4 : 16;
  return a.family == b.family && a.src_port == b.src_port &&
         a.dst_port == b.dst_port &&
         std::memcmp(a.src_addr.data(), b.src_addr.data(), n) == 0 &&
         std::memcmp(a.dst_addr.data(), b.dst_addr.data(), n) == 0;
}

/// `h` written out again in its own version.
std::vector<uint8_t> serialize(const header& h) {
  std::vector<uint8_t> out;
  if (h.version == 1) {
    auto line = std::string{"PROXY "} + (h.family == 4 ? "TCP4 " : "TCP6 ") +
                proxy::address_to_string(h.family, h.src_addr) + " " +
                proxy::address_to_string(h.family, h.dst_addr) + " " +
                std::to_string(h.src_port) + " " + std::to_string(h.dst_port) +
                "\r\n";
    out.assign(line.begin(), line.end());
    return out;
  }
  out = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
  std::size_t n = h.family == 4 ? 4 : 16;
  out.push_back(0x21);
  out.push_back(h.family == 4 ? 0x11 : 0x21);
  out.push_back(0);
  out.push_back(static_cast<uint8_t>(2 * n + 4));
  out.insert(out.end(), h.src_addr.begin(), h.src_addr.begin() + n);
  out.insert(out.end(), h.dst_addr.begin(), h.dst_addr.begin() + n);
  for (auto port : {h.src_port, h.dst_port}) {
    out.push_back(static_cast<uint8_t>(port >> 8));
    out.push_back(static_cast<uint8_t>(port & 0xFF));
  }
  return out;
}

void check_done(const uint8_t* data, std::size_t size, const result& res,
                const header& h) {
  FUZZ_CHECK(res.consumed >= 1 && res.consumed <= size);
  FUZZ_CHECK(res.consumed <= proxy::max_size);
  FUZZ_CHECK(res.error.empty());
  FUZZ_CHECK(h.version == 1 || h.version == 2);
  if (h.version == 1) {
    FUZZ_CHECK(res.consumed <= proxy::max_v1_size);
    FUZZ_CHECK(std::memcmp(data, "PROXY ", 6) == 0);
    FUZZ_CHECK(data[res.consumed - 2] == '\r' &&
               data[res.consumed - 1] == '\n');
  } else {
    FUZZ_CHECK(res.consumed >= 16);
    FUZZ_CHECK(res.consumed == 16 + ((std::size_t{data[14]} << 8) | data[15]));
  }
  if (!h.local) {
    FUZZ_CHECK(h.family == 4 || h.family == 6);
    auto again = serialize(h);
    header h2;
    auto res2 = proxy::parse(again.data(), again.size(), accept::any, h2);
    FUZZ_CHECK(res2.status == result::done);
    FUZZ_CHECK(res2.consumed == again.size());
    FUZZ_CHECK(same(h, h2));
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0)
    return 0;
  auto flags = data[0];
  auto which = static_cast<accept>((flags & 3) == 0 ? 3 : (flags & 3));
  auto mode = (flags >> 2) & 3;
  const uint8_t* sizes = data + 1;
  std::size_t sizes_left = size - 1;
  // The stream starts after the first byte; cut sizes are read from the
  // same bytes (so the stream and its cuts vary together, as in a real
  // peer's writes).
  const uint8_t* stream = data + 1;
  std::size_t total = size - 1;
  std::size_t have = 0;
  std::size_t pick = 0;
  result decision;
  header decided;
  bool decided_yet = false;
  while (have < total) {
    std::size_t step = total - have;
    if (mode == 1) {
      step = 1;
    } else if (mode >= 2) {
      auto r = sizes_left > 0 ? sizes[pick++ % sizes_left] : 0;
      step = 1 + r % (mode == 2 ? 8 : 64);
    }
    have = std::min(total, have + step);
    header h;
    auto res = proxy::parse(stream, have, which, h);
    if (decided_yet) {
      // More bytes never change a decision.
      FUZZ_CHECK(res.status == decision.status);
      FUZZ_CHECK(res.consumed == decision.consumed);
      if (res.status == result::done)
        FUZZ_CHECK(same(h, decided) && h.version == decided.version);
      continue;
    }
    switch (res.status) {
      case result::need_more:
        FUZZ_CHECK(have < proxy::max_size);
        FUZZ_CHECK(res.error.empty());
        break;
      case result::invalid:
        FUZZ_CHECK(!res.error.empty());
        decision = res;
        decided_yet = true;
        break;
      case result::done:
        check_done(stream, have, res, h);
        decision = res;
        decided = h;
        decided_yet = true;
        break;
    }
  }
  return 0;
}
