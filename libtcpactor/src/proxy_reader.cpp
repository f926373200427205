// The PROXY protocol step of an accepted connection: deadline, reads,
// parse (proxy_header.cpp), the header's addresses, the bytes behind it.

#include "proxy_reader.hpp"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>

#include "framing_layer.hpp"
#include "socket_manager.hpp"
#include "tcpactor/errors.hpp"
#include "tcpactor/log.hpp"

namespace tcpactor {

namespace {

proxy::accept to_accept(tcpactor::proxy_protocol x) {
  switch (x) {
    case tcpactor::proxy_protocol::v1:
      return proxy::accept::v1;
    case tcpactor::proxy_protocol::v2:
      return proxy::accept::v2;
    default:
      return proxy::accept::any;
  }
}

tcp::endpoint endpoint_of(uint8_t family, const std::array<uint8_t, 16>& addr,
                          uint16_t port) {
  if (family == 4) {
    asio::ip::address_v4::bytes_type b;
    std::memcpy(b.data(), addr.data(), b.size());
    return {asio::ip::address_v4{b}, port};
  }
  asio::ip::address_v6::bytes_type b;
  std::memcpy(b.data(), addr.data(), b.size());
  return {asio::ip::address_v6{b}, port};
}

} // namespace

proxy_reader::proxy_reader(socket_manager& mgr, proxy::accept which,
                           std::function<void()> done) noexcept
    : mgr_(mgr), which_(which), done_(std::move(done)) {
  // nop
}

void proxy_reader::start(socket_manager& mgr, tcpactor::proxy_protocol which,
                         std::chrono::milliseconds timeout,
                         std::function<void()> done) {
  auto self =
      std::make_shared<proxy_reader>(mgr, to_accept(which), std::move(done));
  mgr.enter(socket_manager::state::handshaking);
  mgr.timer_ = std::make_unique<asio::steady_timer>(*mgr.lc_->loop);
  mgr.timer_->expires_after(timeout);
  // The TLS handshake reuses timer_ right after the header; `over_` tells
  // a wait that completed before that cancel from a real expiry.
  mgr.timer_->async_wait([self, mgr_ref = mgr.self_ptr(),
                          timeout](error_code ec) {
    if (ec || self->over_ ||
        self->mgr_.state_ != socket_manager::state::handshaking)
      return;
    self->over_ = true;
    auto got = self->size_;
    self->mgr_.finish(make_error(errc::proxy_header_timeout,
                                 self->mgr_.peer() +
                                     ": no complete PROXY header within " +
                                     std::to_string(timeout.count()) + "ms (" +
                                     std::to_string(got) + " bytes received)"));
  });
  self->arm();
}

void proxy_reader::arm() {
  mgr_.socket_->async_wait(tcp::socket::wait_read, [self = shared_from_this(),
                                                    mgr_ref = mgr_.self_ptr()](
                                                       error_code ec) {
    if (self->over_ || self->mgr_.state_ != socket_manager::state::handshaking)
      return;
    if (ec) {
      if (ec != asio::error::operation_aborted)
        self->fail("waiting for the header: " + ec.message());
      return;
    }
    self->on_readable();
  });
}

void proxy_reader::on_readable() {
  for (;;) {
    // Never more than a header can take: what lies behind it stays in the
    // socket for the layers above, except what shares these reads.
    auto n = ::recv(mgr_.fd_, buf_ + size_, sizeof(buf_) - size_, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      arm();
      return;
    }
    if (n < 0) {
      int err = errno; // before anything that may overwrite it
      fail(std::string{"reading the header: "} + std::strerror(err));
      return;
    }
    if (n == 0) {
      fail(size_ == 0 ? "peer closed before sending a PROXY header"
                      : "peer closed after " + std::to_string(size_) +
                            " bytes, inside the PROXY header");
      return;
    }
    size_ += static_cast<std::size_t>(n);
    proxy::header h;
    auto res = proxy::parse(buf_, size_, which_, h);
    switch (res.status) {
      case proxy::result::done:
        accept_header(h, res.consumed);
        return;
      case proxy::result::invalid:
        fail(std::move(res.error));
        return;
      case proxy::result::need_more:
        if (size_ == sizeof(buf_)) {
          // parse() decides within max_size bytes; this is a bug.
          fail("no decision within " + std::to_string(size_) + " bytes");
          return;
        }
        break; // the next recv says EAGAIN or brings more
    }
  }
}

void proxy_reader::fail(std::string why) {
  over_ = true;
  mgr_.finish(make_error(errc::proxy_header_invalid,
                         mgr_.peer() + ": " + std::move(why)));
}

void proxy_reader::accept_header(const proxy::header& h, std::size_t consumed) {
  over_ = true;
  mgr_.timer_.reset();
  if (!h.local) {
    // Written before the listener spawns the actor or reports the
    // connection, so every later reader sees the header's view.
    mgr_.remote_ = endpoint_of(h.family, h.src_addr, h.src_port);
    mgr_.local_ = endpoint_of(h.family, h.dst_addr, h.dst_port);
    if (mgr_.framing_)
      mgr_.framing_->set_peer(mgr_.peer());
  }
  if (consumed < size_) {
    std::lock_guard<std::mutex> guard{mgr_.mtx_};
    mgr_.rare_locked().early_input = bytes{buf_ + consumed, size_ - consumed};
  }
  mgr_.enter(socket_manager::state::open);
  auto done = std::move(done_);
  done_ = nullptr;
  if (done)
    done();
}

} // namespace tcpactor
