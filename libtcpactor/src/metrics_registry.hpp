#pragma once

// The counters behind runtime::metrics(): one block per shard, a thread
// always counts into the same shard, and a snapshot sums the shards. No lock
// and no cache line shared with another busy thread on the data path: each
// count is one relaxed add into the counting thread's own block.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include <caf/error.hpp>

#include "tcpactor/metrics.hpp"

namespace tcpactor {

class metrics_registry {
public:
  /// Shards per runtime. Threads beyond this share (still correct: atomic).
  static constexpr std::size_t shard_count = 16;
  /// Close-reason slots: 0 clean, 1-62 an errc code, 63 anything else.
  static constexpr std::size_t reason_slots = 64;

  /// Upper bounds in microseconds, ascending.
  static constexpr std::array<uint64_t, 10> lifetime_bounds_us{
      1'000,      10'000,      100'000,       1'000'000,      10'000'000,
      60'000'000, 600'000'000, 3'600'000'000, 21'600'000'000, 86'400'000'000};
  static constexpr std::array<uint64_t, 12> handshake_bounds_us{
      1'000,   2'500,   5'000,     10'000,    25'000,    50'000,
      100'000, 250'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000};

  struct alignas(64) shard {
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> over_limit{0};
    std::atomic<uint64_t> no_descriptors{0};
    std::atomic<uint64_t> handshake_failures{0};
    std::atomic<uint64_t> bytes_in{0};
    std::atomic<uint64_t> bytes_out{0};
    // Gauges as deltas: + where bytes come, - where they go (possibly on
    // another shard); the wrapping sum over all shards is the gauge.
    std::atomic<uint64_t> unprocessed{0};
    std::atomic<uint64_t> queued{0};
    std::array<std::atomic<uint64_t>, reason_slots> closed{};
    std::array<std::atomic<uint64_t>, lifetime_bounds_us.size() + 1> lifetime{};
    std::atomic<uint64_t> lifetime_sum_us{0};
    std::array<std::atomic<uint64_t>, handshake_bounds_us.size() + 1>
        handshake{};
    std::atomic<uint64_t> handshake_sum_us{0};
  };

  /// The calling thread's shard.
  shard& local() noexcept { return shards_[thread_slot()]; }

  /// Adds `n` to `counter` of this thread's shard.
  static void add(std::atomic<uint64_t>& counter, uint64_t n) noexcept {
    counter.fetch_add(n, std::memory_order_relaxed);
  }

  /// Counts a closed accepted connection: its reason and, if it was open
  /// (`lifetime` > 0), its lifetime.
  void closed(const caf::error& reason,
              std::chrono::steady_clock::duration lifetime) noexcept;

  /// A server-side TLS handshake that took `d`.
  void handshake_done(std::chrono::steady_clock::duration d) noexcept;

  /// Sums the shards into `out` (certificates are the runtime's to add).
  void snapshot(runtime_metrics& out) const;

private:
  static std::size_t thread_slot() noexcept {
    // Handed out in thread creation order, so the few I/O threads of a
    // runtime, made together, land on distinct shards.
    thread_local std::size_t slot =
        next_slot_.fetch_add(1, std::memory_order_relaxed) % shard_count;
    return slot;
  }

  static inline std::atomic<std::size_t> next_slot_{0};

  std::array<shard, shard_count> shards_;
};

} // namespace tcpactor
