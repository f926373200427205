#include "asio_glue.hpp"

#include <cerrno>
#include <cstring>

#include <boost/asio/error.hpp>

namespace tcpactor {

caf::error to_error(const error_code& ec, errc fallback,
                    const std::string& where) {
  if (ec == asio::error::eof)
    return make_error(errc::peer_closed, where);
  if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe)
    return make_error(errc::connection_reset, where + ": " + ec.message());
  return make_error(fallback, where + ": " + ec.message());
}

caf::error errno_to_error(int err, errc fallback, const std::string& where) {
  return to_error(error_code{err, boost::system::system_category()}, fallback,
                  where);
}

std::string to_string(const tcp::endpoint& ep) {
  auto addr = ep.address();
  std::string result;
  if (addr.is_v6()) {
    result += '[';
    result += addr.to_string();
    result += ']';
  } else {
    result = addr.to_string();
  }
  result += ':';
  result += std::to_string(ep.port());
  return result;
}

} // namespace tcpactor
