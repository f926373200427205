#pragma once

#include <cstddef>
#include <memory>

#include "tcpactor/bytes.hpp"

namespace tcpactor {

/// The buffer an I/O thread reads into. A large read becomes its chunk
/// without a copy, and the block returns to a process-wide pool once the
/// last owner lets go. Handing 64 KiB chunks to malloc instead cost a copy
/// per chunk, and, since they are freed on another thread, glibc trimmed the
/// arena and page-faulted them back in: together about 17% of the server's
/// CPU in the stream benchmark. A small read is copied into a chunk of its
/// exact size and the block stays, so small messages hold no large block.
///
/// One per I/O thread (thread_local), so no locking but the pool's.
class read_buffer {
public:
  /// Size of a pooled block. Reads of up to this many bytes use the pool.
  static constexpr std::size_t block_size = 64 * 1024;

  /// Chunks at least this large take the block (it holds at most a third
  /// more than the chunk); smaller ones are copied.
  static constexpr std::size_t adopt_min = block_size / 4 * 3;

  /// Where to read up to `cap` bytes (at most `block_size`).
  char* data();

  /// The chunk for the `n` bytes just read into data(), and the bytes that
  /// chunk keeps allocated (for flow control).
  bytes take(std::size_t n, std::size_t& held);

  /// Free blocks the pool keeps at most; more are returned to malloc.
  static constexpr std::size_t max_pooled = 64;

private:
  std::shared_ptr<char[]> block_;
};

} // namespace tcpactor
