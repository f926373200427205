#pragma once

// The one private header that pulls in Asio. Never installed.

#include <cstddef>
#include <new>
#include <string>
#include <utility>

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

/// Allocates exactly what Asio asks for, with plain operator new.
template <class T>
struct exact_allocator {
  using value_type = T;
  exact_allocator() noexcept = default;
  template <class U>
  exact_allocator(const exact_allocator<U>&) noexcept {
    // nop
  }
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* ptr, std::size_t) noexcept { ::operator delete(ptr); }
  template <class U>
  bool operator==(const exact_allocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const exact_allocator<U>&) const noexcept {
    return false;
  }
};

/// A completion handler whose operation is allocated with exact_allocator
/// instead of Asio's per-thread recycling cache. For the waits an idle
/// connection keeps for its whole life: the cache hands out whatever block
/// the last completed operation left (an accept, ~250 bytes), so a 80-byte
/// read wait would hold that block for as long as the connection idles.
template <class Handler>
class exact_handler {
public:
  using allocator_type = exact_allocator<void>;

  explicit exact_handler(Handler h) : h_(std::move(h)) {
    // nop
  }

  allocator_type get_allocator() const noexcept { return {}; }

  template <class... Ts>
  void operator()(Ts&&... xs) {
    h_(std::forward<Ts>(xs)...);
  }

private:
  Handler h_;
};

template <class Handler>
exact_handler<Handler> exact_alloc(Handler h) {
  return exact_handler<Handler>{std::move(h)};
}

/// The one Asio/errno -> tcpactor error map. `where` names the peer or the
/// operation, e.g. "127.0.0.1:4000".
caf::error to_error(const error_code& ec, errc fallback,
                    const std::string& where);

/// Same, from an errno value.
caf::error errno_to_error(int err, errc fallback, const std::string& where);

/// "host:port", with brackets around IPv6 addresses.
std::string to_string(const tcp::endpoint& ep);

} // namespace tcpactor
