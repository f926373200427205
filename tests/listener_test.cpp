#include "tcpactor/listener.hpp"

#include "fixtures.hpp"

using namespace tcpactor;
using namespace tcpactor::test;

BOOST_FIXTURE_TEST_SUITE(listener_tests, runtime_fixture)

BOOST_AUTO_TEST_CASE(listener_echoes_via_returned_bytes) {
  auto l = listen(echo_handler());
  BOOST_TEST(l.port() != 0);
  auto c = connect(l.port());
  BOOST_TEST(!c.write_bytes(bytes{"hello"}));
  BOOST_TEST(read_exactly(c, 5) == "hello");
}

BOOST_AUTO_TEST_SUITE_END()
