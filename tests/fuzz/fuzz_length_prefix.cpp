// libFuzzer target: the length_prefix decoder (see fuzz_common.hpp).
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  fuzz::input in{data, size};
  // Byte 0: header size (bits 0-1), little endian (2), inclusive (3), piece
  // mode (4-5), large max (6). Bytes 1-2: max. Bytes 3-4: piece seed.
  auto flags = in.byte();
  fuzz::framing_config cfg;
  cfg.type = fuzz::codec::length_prefix;
  static constexpr uint8_t sizes[] = {1, 2, 4, 8};
  cfg.header_size = sizes[flags & 3];
  cfg.big_endian = (flags & 4) == 0;
  cfg.header_counted = (flags & 8) != 0;
  auto max = in.u16();
  cfg.max_frame_size = 1 + max % ((flags & 64) ? 70000 : 300);
  // What the header can express (validate() rejects more).
  if (cfg.header_size <= 2) {
    std::size_t cap = cfg.header_size == 1 ? 255 : 65535;
    if (cfg.header_counted)
      cap -= cfg.header_size;
    cfg.max_frame_size = std::min(cfg.max_frame_size, cap);
  }
  fuzz::cutter cut{static_cast<uint8_t>(flags >> 4), in.u16()};
  fuzz::run(cfg, in.rest(), cut);
  return 0;
}
