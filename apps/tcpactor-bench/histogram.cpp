#include "histogram.hpp"

#include <algorithm>
#include <cmath>

namespace tcpactor_bench {

void histogram::merge(const histogram& other) {
  for (std::size_t i = 0; i < bucket_count; ++i)
    counts_[i] += other.counts_[i];
  total_ += other.total_;
  max_ = std::max(max_, other.max_);
}

uint64_t histogram::upper_bound(std::size_t i) {
  if (i < sub_count)
    return i;
  auto exp = static_cast<int>((i - sub_count) / sub_count) + sub_bits;
  auto sub = (i - sub_count) % sub_count;
  auto width = uint64_t{1} << (exp - sub_bits);
  // Bucket i covers [2^exp + sub * width, 2^exp + (sub + 1) * width).
  return (uint64_t{1} << exp) + (sub + 1) * width - 1;
}

uint64_t histogram::quantile(double q) const {
  if (total_ == 0)
    return 0;
  auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total_)));
  rank = std::clamp<uint64_t>(rank, 1, total_);
  uint64_t seen = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    seen += counts_[i];
    if (seen >= rank)
      return std::min(upper_bound(i), max_);
  }
  return max_;
}

} // namespace tcpactor_bench
