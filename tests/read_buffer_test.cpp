// The I/O threads' read buffer (white-box): large reads become chunks without
// a copy and their block comes back to the pool; small reads are copied out.

#include "read_buffer.hpp"

#include <cstring>

#include <boost/test/unit_test.hpp>

using namespace tcpactor;

namespace {

// Boost.Test would compare char pointers as strings.
const void* addr(const char* p) {
  return p;
}

} // namespace

BOOST_AUTO_TEST_SUITE(read_buffer_tests)

BOOST_AUTO_TEST_CASE(a_small_read_is_copied_and_the_block_stays) {
  read_buffer buf;
  auto block = buf.data(read_buffer::block_size);
  std::memcpy(block, "hello", 5);
  std::size_t held = 0;
  auto chunk = buf.take(5, held);
  BOOST_TEST(chunk.to_string() == "hello");
  BOOST_TEST(held == 5u);
  BOOST_TEST(addr(chunk.data()) != addr(block));
  // The next read reuses the block; the chunk keeps its own bytes.
  BOOST_TEST(addr(buf.data(read_buffer::block_size)) == addr(block));
  std::memcpy(block, "xxxxx", 5);
  BOOST_TEST(chunk.to_string() == "hello");
}

BOOST_AUTO_TEST_CASE(a_large_read_takes_the_block_which_returns_to_the_pool) {
  read_buffer buf;
  auto block = buf.data(read_buffer::block_size);
  auto n = read_buffer::adopt_min;
  std::memset(block, 'a', n);
  std::size_t held = 0;
  {
    auto chunk = buf.take(n, held);
    BOOST_TEST(addr(chunk.data()) == addr(block)); // no copy
    BOOST_TEST(chunk.size() == n);
    BOOST_TEST(held == read_buffer::block_size); // flow control sees it all
    // The next read gets another block: the chunk's bytes stay untouched.
    auto next = buf.data(read_buffer::block_size);
    BOOST_TEST(addr(next) != addr(block));
    std::memset(next, 'b', read_buffer::block_size);
    BOOST_TEST(chunk.view() == std::string(n, 'a'));
    // A copy keeps the block alive after the first owner is gone.
    auto copy = chunk;
    chunk = bytes{};
    BOOST_TEST(copy.view() == std::string(n, 'a'));
    // Hand the second block on too, so that a third read must ask the pool.
    auto second = buf.take(n, held);
    BOOST_TEST(addr(second.data()) == addr(next));
  }
  // Both blocks went back to the pool, `block` last (the copy outlived the
  // second chunk): the next read gets it instead of new memory.
  BOOST_TEST(addr(buf.data(read_buffer::block_size)) == addr(block));
}

BOOST_AUTO_TEST_CASE(a_read_chunk_above_the_block_size_is_always_copied) {
  read_buffer buf;
  auto cap = 2 * read_buffer::block_size;
  auto big = buf.data(cap);
  std::memset(big, 'c', cap);
  std::size_t held = 0;
  auto chunk = buf.take(cap, held);
  BOOST_TEST(addr(chunk.data()) != addr(big));
  BOOST_TEST(held == cap);
  BOOST_TEST(chunk.view() == std::string(cap, 'c'));
}

BOOST_AUTO_TEST_SUITE_END()
