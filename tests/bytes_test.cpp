#include "tcpactor/bytes.hpp"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/message.hpp>

#include <boost/test/unit_test.hpp>

using namespace tcpactor;

BOOST_AUTO_TEST_SUITE(bytes_tests)

BOOST_AUTO_TEST_CASE(default_bytes_are_empty) {
  bytes x;
  BOOST_TEST(x.empty());
  BOOST_TEST(x.size() == 0u);
  BOOST_TEST(x.view().empty());
  BOOST_TEST(x.to_string().empty());
  BOOST_TEST((begin(x) == end(x)));
}

BOOST_AUTO_TEST_CASE(adopt_shares_the_buffer_without_a_copy) {
  std::shared_ptr<char[]> buf{new char[8]};
  std::memcpy(buf.get(), "abcdefgh", 8);
  auto x = bytes::adopt(buf, 3);
  BOOST_TEST(static_cast<const void*>(x.data()) == buf.get());
  BOOST_TEST(x.to_string() == "abc");
  buf.reset(); // the chunk keeps the buffer alive
  BOOST_TEST(x.to_string() == "abc");
  BOOST_TEST(bytes::adopt(std::shared_ptr<char[]>{new char[1]}, 0).empty());
  BOOST_TEST(bytes::adopt(nullptr, 4).empty());
}

BOOST_AUTO_TEST_CASE(constructors_copy_the_source) {
  std::string src = "hello";
  bytes x{src};
  src[0] = 'j'; // the chunk owns its copy
  BOOST_TEST(x.to_string() == "hello");
  BOOST_TEST(x.size() == 5u);
  BOOST_TEST(bytes{"abc"}.to_string() == "abc");
  bytes prefix{std::string_view{"abcdef", 3}};
  BOOST_TEST(prefix.to_string() == "abc");
  std::vector<char> buf{'x', 'y'};
  BOOST_TEST(bytes{buf}.to_string() == "xy");
  BOOST_TEST(bytes{std::string{}}.empty());
}

BOOST_AUTO_TEST_CASE(binary_data_with_nul_bytes_survives) {
  const char raw[] = {'a', '\0', 'b', '\0'};
  bytes x{raw, sizeof(raw)};
  BOOST_TEST(x.size() == 4u);
  BOOST_TEST(x[1] == '\0');
  BOOST_TEST(x[2] == 'b');
  BOOST_TEST((x.view() == std::string_view(raw, sizeof(raw))));
}

BOOST_AUTO_TEST_CASE(copies_share_the_buffer) {
  bytes x{"shared"};
  auto y = x; // NOLINT(performance-unnecessary-copy-initialization)
  BOOST_TEST((x.data() == y.data()), "a copy must not copy the data");
  BOOST_TEST(y.to_string() == "shared");
  bytes z{x.data(), x.size()};
  BOOST_TEST((z.data() != x.data()), "the pointer constructor copies");
}

BOOST_AUTO_TEST_CASE(equality_compares_content) {
  BOOST_TEST((bytes{"abc"} == bytes{"abc"}));
  BOOST_TEST((bytes{"abc"} != bytes{"abd"}));
  BOOST_TEST((bytes{"abc"} != bytes{"ab"}));
  BOOST_TEST((bytes{} == bytes{std::string{}}));
}

BOOST_AUTO_TEST_CASE(make_fills_exactly_once) {
  int calls = 0;
  auto x = bytes::make(4, [&](char* buf) {
    ++calls;
    for (int i = 0; i < 4; ++i)
      buf[i] = static_cast<char>('0' + i);
  });
  BOOST_TEST(calls == 1);
  BOOST_TEST(x.to_string() == "0123");
  auto empty = bytes::make(0, [&](char*) { ++calls; });
  BOOST_TEST(empty.empty());
  BOOST_TEST(calls == 1, "make(0) must not call fill");
}

BOOST_AUTO_TEST_CASE(iterates_with_free_begin_and_end) {
  bytes x{"abc"};
  std::string out;
  for (auto i = begin(x); i != end(x); ++i)
    out += *i;
  BOOST_TEST(out == "abc");
}

BOOST_AUTO_TEST_CASE(to_string_summarizes_instead_of_dumping) {
  BOOST_TEST(to_string(bytes{"hello"}) == "bytes(5)");
  BOOST_TEST(to_string(bytes{}) == "bytes(0)");
}

BOOST_AUTO_TEST_CASE(travels_in_messages_without_copying) {
  bytes x{"payload"};
  auto msg = caf::make_message(x);
  BOOST_TEST_REQUIRE(msg.match_elements<bytes>());
  const auto& y = msg.get_as<bytes>(0);
  BOOST_TEST((y == x));
  BOOST_TEST((y.data() == x.data()));
}

BOOST_AUTO_TEST_CASE(serialization_round_trips) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  const char raw[] = {'b', '\0', 'i', 'n'};
  bytes x{raw, sizeof(raw)};
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  auto err = sink(x);
  BOOST_TEST_REQUIRE(!err);
  bytes y;
  caf::binary_deserializer source{sys, buf};
  err = source(y);
  BOOST_TEST_REQUIRE(!err);
  BOOST_TEST((y == x));
  BOOST_TEST(y.size() == 4u);
  // The empty chunk too.
  bytes e;
  buf.clear();
  caf::binary_serializer sink2{sys, buf};
  BOOST_TEST_REQUIRE(!sink2(e));
  bytes f{"not empty"};
  caf::binary_deserializer source2{sys, buf};
  BOOST_TEST_REQUIRE(!source2(f));
  BOOST_TEST(f.empty());
}

BOOST_AUTO_TEST_SUITE_END()
