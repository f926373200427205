// libFuzzer target: the exact-size decoder (see fuzz_common.hpp).
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  fuzz::input in{data, size};
  // Byte 0: piece mode (bits 0-1), large frames (2). Bytes 1-2: frame size.
  // Bytes 3-4: piece seed.
  auto flags = in.byte();
  fuzz::framing_config cfg;
  cfg.type = fuzz::codec::exact;
  cfg.frame_size = 1 + in.u16() % ((flags & 4) ? 9000 : 16);
  cfg.max_frame_size = cfg.frame_size;
  fuzz::cutter cut{flags, in.u16()};
  fuzz::run(cfg, in.rest(), cut);
  return 0;
}
