#pragma once

#include <cstddef>
#include <memory>
#include <vector>

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
/// A read_chunk above the block size is read into a plain buffer of that
/// size and always copied.
class read_buffer {
public:
  /// Size of a pooled block.
  static constexpr std::size_t block_size = 64 * 1024;

  /// Chunks at least this large take the block (it holds at most a third
  /// more than the chunk); smaller ones are copied.
  static constexpr std::size_t adopt_min = block_size / 4 * 3;

  /// Free blocks the pool keeps at most; more are returned to malloc.
  static constexpr std::size_t max_pooled = 64;

  /// The calling thread's buffer: one per I/O thread, shared by its plain
  /// and TLS connections (their reads never overlap), so an idle connection
  /// holds none and only the pool is locked.
  static read_buffer& local();

  /// Where to read up to `cap` bytes.
  char* data(std::size_t cap);

  /// The chunk for the `n` bytes just read into data(), and the bytes that
  /// chunk keeps allocated (for flow control).
  bytes take(std::size_t n, std::size_t& held);

private:
  std::shared_ptr<char[]> block_;
  std::vector<char> large_; // for a cap above block_size
  bool use_large_ = false;
};

} // namespace tcpactor
