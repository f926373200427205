// The socket: the read loop (socket -> chunk -> upper layer), the write path
// (direct non-blocking send on the writer's thread when nothing is queued,
// else the queue, flushed by the I/O loop when the socket is writable) and
// flow control.

#include "stream_transport.hpp"

#include <cerrno>
#include <sys/socket.h>
#include <sys/uio.h>
#include <vector>

#include "read_buffer.hpp"
#include "socket_manager.hpp"

namespace tcpactor {

namespace {

// Most chunks a loop reads from one socket before it lets the others run.
constexpr int max_reads_per_turn = 16;

constexpr int max_iov = 16;

} // namespace

// -- read side ----------------------------------------------------------------

void stream_transport::read_some() {
  if (mgr_.state_ != socket_manager::state::open || !reading_ || read_armed_)
    return;
  auto& buf = read_buffer::local();
  auto cap = mgr_.cfg_->read_chunk;
  for (int i = 0; i < max_reads_per_turn; ++i) {
    auto n = recv_some(buf.data(cap), cap);
    if (n > 0) {
      auto len = static_cast<std::size_t>(n);
      std::size_t held = 0;
      auto chunk = buf.take(len, held);
      if (up_->consume(std::move(chunk), held)) {
        // Whoever brings the counters back below the low marks resumes us.
        return;
      }
      if (!reading_)
        return; // the layer above gave up (a codec's bad frame)
      if (len < cap) {
        // A short read drained the socket. Waiting now is safe without the
        // extra recv() that would say EAGAIN: Asio re-arms the descriptor
        // with EPOLL_CTL_MOD for every wait, which reports data that is
        // already there.
        arm_read();
        return;
      }
      continue;
    }
    if (n == 0) {
      mgr_.stop_reading(caf::error{});
      return;
    }
    if (recv_failed())
      continue;
    return;
  }
  mgr_.post([this] { read_some(); });
}

long stream_transport::recv_some(char* buf, std::size_t cap) {
  auto n = ::recv(mgr_.fd_, buf, cap, MSG_DONTWAIT);
  if (n > 0) {
    any_read_ = true;
    last_read_ = timeouts::now();
    metrics_registry::add(mgr_.metrics().local().bytes_in,
                          static_cast<uint64_t>(n));
  }
  return n;
}

bool stream_transport::recv_failed() {
  // Taken first: peer() allocates, and that may overwrite errno.
  int err = errno;
  if (err == EINTR)
    return true;
  if (err == EAGAIN || err == EWOULDBLOCK)
    arm_read();
  else
    mgr_.finish(errno_to_error(err, errc::io_failed, mgr_.peer()));
  return false;
}

void stream_transport::arm_read() {
  read_armed_ = true;
  mgr_.socket_->async_wait(
      tcp::socket::wait_read,
      exact_alloc([this, self = mgr_.self_ptr()](error_code ec) {
        read_armed_ = false;
        if (mgr_.state_ != socket_manager::state::open)
          return;
        if (ec) {
          if (ec != asio::error::operation_aborted)
            mgr_.finish(to_error(ec, errc::io_failed, mgr_.peer()));
          return;
        }
        mgr_.lower().read_some();
      }));
}

// -- write side ---------------------------------------------------------------

bool stream_transport::send_locked(const bytes& data) {
  if (!data.empty()) {
    wq_.push_back(data);
    wq_bytes_ += data.size();
    metrics_registry::add(mgr_.metrics().local().queued, data.size());
    if (mgr_.rare_)
      mgr_.rare_->queued_total += data.size();
  }
  return true;
}

void stream_transport::send_or_queue_locked(const char* data, std::size_t n,
                                            bool more) {
  std::size_t sent = 0;
  // A piece with more to follow is queued, so that a large write leaves in
  // one sendmsg: a send per TLS record cost more than the copy it saves.
  if (!more && wq_.empty() && connected_ && !write_armed_) {
    while (sent < n) {
      auto r =
          ::send(mgr_.fd_, data + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r > 0)
        sent += static_cast<std::size_t>(r);
      else if (r < 0 && errno == EINTR)
        continue;
      else
        break; // EAGAIN, or an error the next flush reports again
    }
  }
  if (mgr_.rare_) {
    mgr_.rare_->queued_total += n;
    mgr_.rare_->written_total += sent;
  }
  auto& m = mgr_.metrics().local();
  if (sent > 0)
    metrics_registry::add(m.bytes_out, sent);
  if (sent == n)
    return;
  wq_.push_back(bytes{data + sent, n - sent});
  wq_bytes_ += n - sent;
  metrics_registry::add(m.queued, n - sent);
}

int stream_transport::push_locked(bool& arm) {
  if (!connected_ || write_armed_)
    return 0;
  auto err = flush_locked();
  if (err == EAGAIN) {
    write_armed_ = true;
    arm = true;
    return 0;
  }
  return err;
}

int stream_transport::flush_locked() {
  iovec iov[max_iov];
  while (!wq_.empty()) {
    int n = 0;
    auto offset = wq_offset_;
    for (std::size_t i = 0; i < wq_.size() && n < max_iov; ++i, ++n) {
      auto& chunk = wq_[i];
      iov[n].iov_base = const_cast<char*>(chunk.data()) + offset;
      iov[n].iov_len = chunk.size() - offset;
      offset = 0;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(n);
    auto sent = ::sendmsg(mgr_.fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR)
        continue;
      return errno == EWOULDBLOCK ? EAGAIN : errno;
    }
    auto left = static_cast<std::size_t>(sent);
    if (mgr_.rare_)
      mgr_.rare_->written_total += left;
    auto& m = mgr_.metrics().local();
    metrics_registry::add(m.bytes_out, left);
    // Unsigned wrap-around: the snapshot's sum over shards is the gauge.
    metrics_registry::add(m.queued, -static_cast<uint64_t>(left));
    wq_bytes_ -= left;
    while (left > 0) {
      auto rest = wq_.front().size() - wq_offset_;
      if (left >= rest) {
        left -= rest;
        wq_.pop_front();
        wq_offset_ = 0;
      } else {
        wq_offset_ += left;
        left = 0;
      }
    }
  }
  return 0;
}

void stream_transport::arm_write() {
  if (mgr_.state_ == socket_manager::state::closed || !mgr_.socket_)
    return;
  if (!write_waiting_) {
    write_waiting_ = true;
    write_wait_since_ = timeouts::now();
  }
  mgr_.socket_->async_wait(
      tcp::socket::wait_write,
      exact_alloc([this, self = mgr_.self_ptr()](error_code ec) {
        if (mgr_.state_ == socket_manager::state::closed)
          return;
        if (ec) {
          if (ec != asio::error::operation_aborted)
            mgr_.finish(to_error(ec, errc::write_failed, mgr_.peer()));
          return;
        }
        on_writable();
      }));
}

void stream_transport::on_writable() {
  std::vector<socket_manager::ack> done;
  int err;
  bool empty;
  bool resume = false;
  {
    std::lock_guard<std::mutex> guard{mgr_.mtx_};
    auto before = wq_bytes_;
    err = flush_locked();
    if (wq_bytes_ != before)
      write_wait_since_ = timeouts::now();
    empty = wq_.empty();
    if (empty || err != 0)
      write_armed_ = err == EAGAIN;
    mgr_.take_acks_locked(done);
    resume = unpause_locked();
  }
  mgr_.answer(done);
  if (err != EAGAIN)
    write_waiting_ = false;
  if (err == EAGAIN) {
    arm_write();
  } else if (err != 0) {
    mgr_.finish(errno_to_error(err, errc::write_failed, mgr_.peer()));
    return;
  }
  if (empty && mgr_.state_ == socket_manager::state::closing) {
    mgr_.finish(mgr_.close_reason_);
    return;
  }
  if (empty && shut_wr_requested_ && !write_shut_) {
    shut_write_side();
    return;
  }
  if (resume)
    mgr_.resume_reading();
}

void stream_transport::shut_write_side() {
  write_shut_ = true;
  ::shutdown(mgr_.fd_, SHUT_WR);
  // Both sides ended: nothing more can happen on this connection.
  if (peer_eof_)
    mgr_.begin_close(caf::error{});
}

// -- flow control
// ---------------------------------------------------------------

bool stream_transport::must_pause_locked() const noexcept {
  auto& c = *mgr_.cfg_;
  auto& b = mgr_.bridge_;
  return b.pending_bytes_locked() >= c.max_unprocessed_bytes ||
         b.pending_locked() >= c.max_unprocessed_chunks ||
         wq_bytes_ > c.write_high_watermark;
}

bool stream_transport::may_resume_locked() const noexcept {
  auto& c = *mgr_.cfg_;
  auto& b = mgr_.bridge_;
  return b.pending_bytes_locked() <= c.max_unprocessed_bytes / 2 &&
         b.pending_locked() <= c.max_unprocessed_chunks / 2 &&
         wq_bytes_ <= c.write_low_watermark;
}

bool stream_transport::unpause_locked() noexcept {
  if (read_paused_ && may_resume_locked()) {
    read_paused_ = false;
    return true;
  }
  return false;
}

void stream_transport::clear_locked() noexcept {
  connected_ = false;
  wq_.clear();
  metrics_registry::add(mgr_.metrics().local().queued,
                        -static_cast<uint64_t>(wq_bytes_));
  wq_bytes_ = 0;
}

} // namespace tcpactor
