#pragma once

// The one private header that pulls in Asio. Never installed.

#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <caf/error.hpp>

#include "tcpactor/errors.hpp"

namespace tcpactor {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
using tcp = asio::ip::tcp;

/// A connection's socket. Its executor is the loop's own (a pointer), not
/// the type-erased any_io_executor of tcp::socket: 48 bytes instead of 80 in
/// every transport, and no type-erased dispatch.
using loop_socket =
    asio::basic_stream_socket<tcp, asio::io_context::executor_type>;

/// The one Asio/errno -> tcpactor error map. `where` names the peer or the
/// operation, e.g. "127.0.0.1:4000".
caf::error to_error(const error_code& ec, errc fallback,
                    const std::string& where);

/// Same, from an errno value.
caf::error errno_to_error(int err, errc fallback, const std::string& where);

/// "host:port", with brackets around IPv6 addresses.
std::string to_string(const tcp::endpoint& ep);

} // namespace tcpactor
