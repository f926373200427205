#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace tcpactor {

/// A FIFO on a power-of-two ring. Unlike std::deque, which allocates a map
/// and a 512-byte node up front, an empty ring owns no memory: an idle
/// connection must stay small.
template <class T>
class ring {
public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }

  T& front() noexcept { return buf_[head_]; }

  /// The `i`-th element from the front.
  T& operator[](std::size_t i) noexcept {
    return buf_[(head_ + i) & (buf_.size() - 1)];
  }

  void push_back(T x) {
    if (size_ == buf_.size())
      grow();
    buf_[(head_ + size_) & (buf_.size() - 1)] = std::move(x);
    ++size_;
  }

  void pop_front() {
    buf_[head_] = T{}; // release what it holds now, not on overwrite
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
  }

  /// Removes the `i`-th element, keeping order.
  void erase(std::size_t i) {
    for (; i + 1 < size_; ++i)
      (*this)[i] = std::move((*this)[i + 1]);
    (*this)[size_ - 1] = T{};
    --size_;
  }

  /// Drops all elements and the buffer.
  void clear() {
    std::vector<T>{}.swap(buf_);
    head_ = 0;
    size_ = 0;
  }

private:
  void grow() {
    std::vector<T> next(buf_.empty() ? 4 : buf_.size() * 2);
    for (std::size_t i = 0; i < size_; ++i)
      next[i] = std::move((*this)[i]);
    buf_.swap(next);
    head_ = 0;
  }

  std::vector<T> buf_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

} // namespace tcpactor
