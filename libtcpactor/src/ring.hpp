#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace tcpactor {

/// A FIFO on a power-of-two ring. Unlike std::deque, which allocates a map
/// and a 512-byte node up front, an empty ring owns no memory, and the ring
/// itself is 24 bytes (a std::vector plus indices was 40): a transport holds
/// three, and an idle connection must stay small.
template <class T>
class ring {
public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }

  T& front() noexcept { return buf_[head_]; }

  /// The `i`-th element from the front.
  T& operator[](std::size_t i) noexcept {
    return buf_[(head_ + i) & (cap_ - 1)];
  }

  void push_back(T x) {
    if (size_ == cap_)
      grow();
    buf_[(head_ + size_) & (cap_ - 1)] = std::move(x);
    ++size_;
  }

  void pop_front() {
    buf_[head_] = T{}; // release what it holds now, not on overwrite
    head_ = (head_ + 1) & (cap_ - 1);
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
    buf_.reset();
    cap_ = 0;
    head_ = 0;
    size_ = 0;
  }

private:
  void grow() {
    uint32_t cap = cap_ == 0 ? 4 : cap_ * 2;
    auto next = std::make_unique<T[]>(cap);
    for (uint32_t i = 0; i < size_; ++i)
      next[i] = std::move((*this)[i]);
    buf_ = std::move(next);
    cap_ = cap;
    head_ = 0;
  }

  std::unique_ptr<T[]> buf_;
  uint32_t cap_ = 0;
  uint32_t head_ = 0;
  uint32_t size_ = 0;
};

} // namespace tcpactor
