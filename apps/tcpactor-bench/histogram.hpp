#pragma once

// A log-bucket latency histogram in the manner of HdrHistogram: 64 linear
// sub-buckets per power of two, so every recorded value keeps about 1.6%
// precision from 1 ns to 18 minutes in a fixed 18 KiB, with O(1) recording.

#include <array>
#include <cstdint>

namespace tcpactor_bench {

class histogram {
public:
  /// Records one value in nanoseconds.
  void record(uint64_t ns) {
    ++counts_[index(ns)];
    ++total_;
    if (ns > max_)
      max_ = ns;
  }

  /// Adds every value recorded in `other`.
  void merge(const histogram& other);

  uint64_t count() const { return total_; }

  uint64_t max() const { return max_; }

  /// The smallest recorded value v such that at least `q` (0..1) of all
  /// values are <= v, rounded up to its bucket's upper bound (never above
  /// max()). 0 when empty.
  uint64_t quantile(double q) const;

private:
  static constexpr int sub_bits = 6;
  static constexpr uint64_t sub_count = uint64_t{1} << sub_bits;
  static constexpr int max_exp = 40; // 2^40 ns: 18 minutes
  static constexpr std::size_t bucket_count =
      sub_count + (max_exp - sub_bits + 1) * sub_count;

  static std::size_t index(uint64_t v) {
    if (v < sub_count)
      return static_cast<std::size_t>(v);
    int exp = 63 - __builtin_clzll(v);
    if (exp > max_exp)
      return bucket_count - 1;
    auto sub = (v >> (exp - sub_bits)) & (sub_count - 1);
    return static_cast<std::size_t>(sub_count + (exp - sub_bits) * sub_count +
                                    sub);
  }

  /// The largest value that lands in bucket `i`.
  static uint64_t upper_bound(std::size_t i);

  std::array<uint64_t, bucket_count> counts_{};
  uint64_t total_ = 0;
  uint64_t max_ = 0;
};

} // namespace tcpactor_bench
