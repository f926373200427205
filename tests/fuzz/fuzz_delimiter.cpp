// libFuzzer target: the delimiter decoder (see fuzz_common.hpp).
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  fuzz::input in{data, size};
  // Byte 0: delimiter size - 1 (bits 0-1), accept_crlf (2), small alphabet
  // (3), piece mode (4-5), large max (6), long delimiter (7). Bytes 1-2:
  // max. Bytes 3-4: piece seed. Then the delimiter (its size in one more
  // byte if long), then the stream.
  auto flags = in.byte();
  fuzz::framing_config cfg;
  cfg.type = fuzz::codec::delimiter;
  cfg.max_frame_size = 1 + in.u16() % ((flags & 64) ? 70000 : 64);
  fuzz::cutter cut{static_cast<uint8_t>(flags >> 4), in.u16()};
  // The small alphabet makes delimiters, overlaps and "\r\n" common.
  bool small = (flags & 8) != 0;
  auto map = [small](char c) { return small ? "ab\r\n"[c & 3] : c; };
  if (flags & 4) {
    cfg.delimiter = "\n";
    cfg.accept_crlf = true;
  } else {
    std::size_t n = (flags & 128) ? 1 + in.byte() % 64 : 1 + (flags & 3);
    cfg.delimiter.clear();
    for (std::size_t i = 0; i < n; ++i)
      cfg.delimiter += map(static_cast<char>(in.byte()));
  }
  auto rest = in.rest();
  std::string stream;
  stream.reserve(rest.size());
  for (char c : rest)
    stream += map(c);
  fuzz::run(cfg, stream, cut);
  return 0;
}
