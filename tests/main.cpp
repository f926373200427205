#define BOOST_TEST_MODULE tcpactor
#include <boost/test/unit_test.hpp>

// Each *_test.cpp holds one suite; CTest runs them one by one.
