// The write path: a reply or `write` -> direct non-blocking send on the
// caller's thread when nothing is queued, else the queue, drained by the I/O
// loop when the socket becomes writable.

#include <cerrno>
#include <sys/socket.h>
#include <sys/uio.h>
#include <vector>

#include "transport.hpp"

namespace tcpactor {

namespace {

constexpr int max_iov = 16;

} // namespace

bool transport::write(const bytes& data, caf::strong_actor_ptr ack_to,
                      caf::message_id ack_mid) {
  std::vector<ack> done;
  int err = 0;
  bool arm = false;
  bool overflow = false;
  bool tls_failed = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!writable_)
      return false;
    auto early = tls_ ? tls_->early_bytes : 0;
    if (wq_bytes_ + early + data.size() > cfg_->write_queue_limit) {
      writable_ = false;
      overflow = true;
    } else if (tls_ && !tls_->ready) {
      // Encrypted once the handshake is done, in this order.
      tls_->early.push_back({data, std::move(ack_to), ack_mid});
      tls_->early_bytes += data.size();
      return true;
    } else {
      if (tls_) {
        tls_failed = !tls_encrypt_locked(data);
      } else if (!data.empty()) {
        wq_.push_back(data);
        wq_bytes_ += data.size();
        if (rare_)
          rare_->queued_total += data.size();
      }
      if (ack_to) {
        auto& r = rare_locked();
        r.acks.push_back(ack{r.queued_total, std::move(ack_to), ack_mid});
      }
      // Nothing in flight: write right here, on the actor's thread. A hop to
      // the I/O loop would cost a wakeup per reply.
      err = push_locked(arm);
      if (err != 0)
        writable_ = false;
      take_acks_locked(done);
    }
  }
  for (auto& x : done)
    respond(x.to, x.mid, caf::message{});
  if (overflow) {
    abort(make_error(errc::write_overflow,
                     peer() + ": more than " +
                         std::to_string(cfg_->write_queue_limit) +
                         " bytes queued for a peer that does not read"));
    return false;
  }
  if (tls_failed)
    abort(make_error(errc::tls_failed, peer() + ": encryption failed"));
  else if (err != 0)
    abort(errno_to_error(err, errc::write_failed, peer()));
  else if (arm)
    post([this] { arm_write(); });
  return true;
}

int transport::push_locked(bool& arm) {
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

void transport::take_acks_locked(std::vector<ack>& done) {
  if (!rare_)
    return;
  auto& acks = rare_->acks;
  while (!acks.empty() && acks.front().end <= rare_->written_total) {
    done.push_back(std::move(acks.front()));
    acks.pop_front();
  }
}

transport::rare& transport::rare_locked() {
  if (!rare_) {
    rare_ = std::make_unique<rare>();
    // Positions count from here: what is queued now ends at wq_bytes_.
    rare_->queued_total = wq_bytes_;
  }
  return *rare_;
}

int transport::flush_locked() {
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
    auto sent = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR)
        continue;
      return errno == EWOULDBLOCK ? EAGAIN : errno;
    }
    auto left = static_cast<std::size_t>(sent);
    if (rare_)
      rare_->written_total += left;
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

void transport::arm_write() {
  if (state_ == state::closed || !socket_)
    return;
  if (!write_waiting_) {
    write_waiting_ = true;
    write_wait_since_ = timeouts::now();
  }
  socket_->async_wait(tcp::socket::wait_write,
                      [this, self = self_ptr()](error_code ec) {
                        if (state_ == state::closed)
                          return;
                        if (ec) {
                          if (ec != asio::error::operation_aborted)
                            finish(to_error(ec, errc::write_failed, peer()));
                          return;
                        }
                        on_writable();
                      });
}

void transport::on_writable() {
  std::vector<ack> done;
  int err;
  bool empty;
  bool resume = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto before = wq_bytes_;
    err = flush_locked();
    if (wq_bytes_ != before)
      write_wait_since_ = timeouts::now();
    empty = wq_.empty();
    if (empty || err != 0)
      write_armed_ = err == EAGAIN;
    take_acks_locked(done);
    if (read_paused_ && may_resume_locked()) {
      read_paused_ = false;
      resume = true;
    }
  }
  for (auto& x : done)
    respond(x.to, x.mid, caf::message{});
  if (err != EAGAIN)
    write_waiting_ = false;
  if (err == EAGAIN) {
    arm_write();
  } else if (err != 0) {
    finish(errno_to_error(err, errc::write_failed, peer()));
    return;
  }
  if (empty && state_ == state::closing) {
    finish(close_reason_);
    return;
  }
  if (empty && shut_wr_requested_ && !write_shut_) {
    shut_write_side();
    return;
  }
  if (resume)
    read_some();
}

} // namespace tcpactor
