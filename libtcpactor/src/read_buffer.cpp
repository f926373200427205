#include "read_buffer.hpp"

#include <mutex>
#include <vector>

namespace tcpactor {

namespace {

struct pool {
  pool() {
    // Never grows under the lock.
    free.reserve(read_buffer::max_pooled);
  }
  std::mutex mtx;
  std::vector<char*> free;
};

// Never destroyed: chunks may outlive every runtime and static destructors.
pool& the_pool() {
  static auto* p = new pool;
  return *p;
}

struct give_back {
  void operator()(char* block) const noexcept {
    auto& p = the_pool();
    {
      std::lock_guard<std::mutex> guard{p.mtx};
      if (p.free.size() < read_buffer::max_pooled) {
        p.free.push_back(block);
        return;
      }
    }
    delete[] block;
  }
};

std::shared_ptr<char[]> take_block() {
  char* block = nullptr;
  {
    auto& p = the_pool();
    std::lock_guard<std::mutex> guard{p.mtx};
    if (!p.free.empty()) {
      block = p.free.back();
      p.free.pop_back();
    }
  }
  if (!block)
    block = new char[read_buffer::block_size]; // not zero-filled
  return std::shared_ptr<char[]>{block, give_back{}};
}

} // namespace

read_buffer& read_buffer::local() {
  thread_local read_buffer buf;
  return buf;
}

char* read_buffer::data(std::size_t cap) {
  use_large_ = cap > block_size;
  if (use_large_) {
    if (large_.size() < cap)
      large_.resize(cap);
    return large_.data();
  }
  if (!block_)
    block_ = take_block();
  return block_.get();
}

bytes read_buffer::take(std::size_t n, std::size_t& held) {
  held = n;
  if (use_large_)
    return bytes{large_.data(), n};
  if (n < adopt_min)
    return bytes{block_.get(), n};
  held = block_size;
  return bytes::adopt(std::move(block_), n);
}

} // namespace tcpactor
