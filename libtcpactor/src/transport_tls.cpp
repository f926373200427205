// The TLS layer of a transport: OpenSSL reads the loop's received bytes in
// place and writes through our own BIO into the plain path's send-or-queue
// (tls_bio below), so the socket calls, flow control and write queue of the
// plain path stay as they are. The write queue carries ciphertext; the
// reader decrypts before it delivers.
//
// Threads: handshake steps (the expensive public-key work) run on the
// runtime's crypto threads, never on an I/O loop; record encryption runs on
// the writer's thread and decryption on the loop, one record at a time. The
// SSL object is guarded by mtx_.

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "read_buffer.hpp"
#include "tls_context.hpp"
#include "transport.hpp"

namespace tcpactor {

namespace {

// One TLS record's plaintext at most per SSL_write: each record leaves for
// the socket as soon as it is sealed, however large the write.
constexpr std::size_t max_record = 16 * 1024;

// Most handshake bytes read from the socket in one go: a certificate chain
// fits many times over, and a peer cannot make us buffer more.
constexpr std::size_t max_handshake_read = 64 * 1024;

constexpr int max_reads_per_turn = 16;

} // namespace

/// The two BIOs. Memory BIOs cost two copies of every record each way (into
/// the BIO, then out of it) plus a zero-fill of the BIO's buffer.
///
/// The write BIO hands OpenSSL's record buffer straight to send(), and
/// copies only what the kernel does not take. It always takes everything:
/// the queue has its own bound.
///
/// The read BIO gives OpenSSL the bytes of the loop's last recv in place;
/// only what OpenSSL leaves of them (when the plaintext buffer fills first)
/// is copied, into the connection's own `kept` buffer.
struct tls_bio {
  using input = transport::tls_state::input;

  static BIO* make_writer(transport* t) {
    static BIO_METHOD* m = new_method("tcpactor write queue", [](auto x) {
      BIO_meth_set_write_ex(x, write_ex);
    });
    return make(m, t);
  }

  static BIO* make_reader(input* in) {
    static BIO_METHOD* m = new_method("tcpactor received bytes", [](auto x) {
      BIO_meth_set_read_ex(x, read_ex);
    });
    return make(m, in);
  }

  static void lend(input& in, const char* data, std::size_t n) {
    in.lent = data;
    in.lent_size = n;
  }

  /// Before the lent bytes go away: keeps what OpenSSL did not read.
  static void keep_rest(input& in) {
    if (in.lent_size > 0)
      append(in, in.lent, in.lent_size);
    in.lent = nullptr;
    in.lent_size = 0;
  }

  static void append(input& in, const char* data, std::size_t n) {
    in.kept.insert(in.kept.end(), data, data + n);
  }

private:
  template <class F>
  static BIO_METHOD* new_method(const char* name, F set_io) {
    auto x = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, name);
    set_io(x);
    BIO_meth_set_ctrl(x, ctrl);
    BIO_meth_set_create(x, init);
    return x;
  }

  static BIO* make(BIO_METHOD* m, void* data) {
    auto b = BIO_new(m);
    if (b)
      BIO_set_data(b, data);
    return b;
  }

  static int init(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }

  static int write_ex(BIO* b, const char* data, std::size_t n,
                      std::size_t* written) {
    static_cast<transport*>(BIO_get_data(b))->tls_out_locked(data, n);
    *written = n;
    return 1;
  }

  static int read_ex(BIO* b, char* out, std::size_t len,
                     std::size_t* readbytes) {
    auto& in = *static_cast<input*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    std::size_t n = 0;
    if (in.kept_pos < in.kept.size()) {
      n = std::min(len, in.kept.size() - in.kept_pos);
      std::memcpy(out, in.kept.data() + in.kept_pos, n);
      in.kept_pos += n;
      if (in.kept_pos == in.kept.size()) {
        // Served: an idle connection keeps no buffer.
        std::vector<char>{}.swap(in.kept);
        in.kept_pos = 0;
      }
    } else if (in.lent_size > 0) {
      n = std::min(len, in.lent_size);
      std::memcpy(out, in.lent, n);
      in.lent += n;
      in.lent_size -= n;
    }
    *readbytes = n;
    if (n > 0)
      return 1;
    BIO_set_retry_read(b); // more comes with the next recv
    return 0;
  }

  static long ctrl(BIO*, int cmd, long, void*) {
    // OpenSSL flushes after each handshake flight; nothing is buffered here.
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
  }
};

void transport::tls_out_locked(const char* data, std::size_t n) {
  std::size_t sent = 0;
  // A record with more to follow is queued, so that a large write leaves in
  // one sendmsg: a send per record cost more than the copy it saves.
  if (!tls_->more && wq_.empty() && connected_ && !write_armed_) {
    while (sent < n) {
      auto r = ::send(fd_, data + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r > 0)
        sent += static_cast<std::size_t>(r);
      else if (r < 0 && errno == EINTR)
        continue;
      else
        break; // EAGAIN, or an error the next flush reports again
    }
  }
  if (rare_) {
    rare_->queued_total += n;
    rare_->written_total += sent;
  }
  if (sent == n)
    return;
  wq_.push_back(bytes{data + sent, n - sent});
  wq_bytes_ += n - sent;
}

const tls_info& transport::tls() const noexcept {
  static const tls_info plain;
  return tls_ ? tls_->info : plain;
}

void transport::use_tls(std::shared_ptr<tls_context> ctx, SSL* ssl,
                        std::chrono::milliseconds handshake_timeout) {
  // OpenSSL holds no buffers for an idle connection this way.
  SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
  tls_ = std::make_unique<tls_state>();
  SSL_set_bio(ssl, tls_bio::make_reader(&tls_->in), tls_bio::make_writer(this));
  tls_->ctx = std::move(ctx);
  tls_->ssl = ssl;
  tls_->handshake_timeout = handshake_timeout;
}

void transport::handshake(std::function<void()> done) {
  post([this, done{std::move(done)}]() mutable {
    if (state_ != state::open || !tls_)
      return;
    tls_->on_handshake = std::move(done);
    begin_handshake();
  });
}

void transport::begin_handshake() {
  state_ = state::handshaking;
  auto limit = tls_->handshake_timeout;
  timer_ = std::make_unique<asio::steady_timer>(*lc_->loop);
  timer_->expires_after(limit);
  timer_->async_wait([this, self = self_ptr(), limit](error_code ec) {
    if (ec || state_ != state::handshaking)
      return;
    finish(make_error(errc::tls_handshake_timeout,
                      peer() + ": no TLS handshake within " +
                          std::to_string(limit.count()) + "ms"));
  });
  if (SSL_is_server(tls_->ssl)) {
    // Nothing to say before the client's hello.
    arm_handshake_read();
    return;
  }
  asio::post(lc_->rt->crypto(),
             [this, self = self_ptr()] { handshake_step({}); });
}

void transport::arm_handshake_read() {
  socket_->async_wait(tcp::socket::wait_read, [this, self = self_ptr()](
                                                  error_code ec) {
    if (state_ != state::handshaking)
      return;
    if (ec) {
      if (ec != asio::error::operation_aborted)
        finish(to_error(ec, errc::tls_handshake_failed, peer()));
      return;
    }
    std::vector<char> in(max_record + 512);
    std::size_t got = 0;
    while (got < max_handshake_read) {
      if (got == in.size())
        in.resize(std::min(in.size() * 2, max_handshake_read));
      auto n = ::recv(fd_, in.data() + got, in.size() - got, MSG_DONTWAIT);
      if (n > 0) {
        got += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n == 0 && got == 0) {
        finish(make_error(errc::tls_handshake_failed,
                          peer() + ": peer closed the connection during the "
                                   "TLS handshake"));
        return;
      }
      if (n < 0) {
        int err = errno; // before peer(), which may overwrite it
        finish(errno_to_error(err, errc::tls_handshake_failed, peer()));
        return;
      }
      break; // FIN after data: OpenSSL reads what came first
    }
    in.resize(got);
    asio::post(lc_->rt->crypto(),
               [this, self = self_ptr(), in{std::move(in)}]() mutable {
                 handshake_step(std::move(in));
               });
  });
}

void transport::handshake_step(std::vector<char> in) {
  int rc;
  int ssl_err = 0;
  int io_err = 0;
  bool arm = false;
  std::string why;
  std::vector<ack> done;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (finished_ || !tls_ || !tls_->ssl)
      return;
    auto ssl = tls_->ssl;
    tls_bio::append(tls_->in, in.data(), in.size());
    ERR_clear_error();
    rc = SSL_do_handshake(ssl);
    if (rc != 1) {
      ssl_err = SSL_get_error(ssl, rc);
      if (ssl_err != SSL_ERROR_WANT_READ)
        why = tls_context::last_error(ssl);
    } else {
      tls_->info = tls_context::info(ssl);
      tls_->ready = true;
      // Writes made while we shook hands go first, in order: a writer that
      // sees `ready` from now on queues behind them.
      for (; !tls_->early.empty(); tls_->early.pop_front()) {
        auto& x = tls_->early.front();
        tls_encrypt_locked(x.data);
        if (x.to) {
          auto& r = rare_locked();
          r.acks.push_back(ack{r.queued_total, std::move(x.to), x.mid});
        }
      }
      tls_->early_bytes = 0;
    }
    // Our next flight, or the alert that tells the peer why we give up, went
    // out through the write BIO; what the kernel did not take is queued.
    io_err = push_locked(arm);
    take_acks_locked(done);
  }
  for (auto& x : done)
    respond(x.to, x.mid, caf::message{});
  post([this, rc, ssl_err, io_err, arm, why{std::move(why)}]() mutable {
    on_handshake_step(rc, ssl_err, io_err, arm, std::move(why));
  });
}

void transport::on_handshake_step(int rc, int ssl_err, int io_err, bool arm,
                                  std::string why) {
  if (state_ != state::handshaking)
    return;
  if (io_err != 0) {
    finish(errno_to_error(io_err, errc::tls_handshake_failed, peer()));
    return;
  }
  if (arm)
    arm_write();
  if (rc == 1) {
    timer_.reset();
    state_ = state::open;
    if (auto fn = std::move(tls_->on_handshake)) {
      tls_->on_handshake = nullptr;
      fn(); // the listener spawns the connection actor
    } else {
      on_ready(); // a client
    }
    return;
  }
  if (ssl_err == SSL_ERROR_WANT_READ) {
    arm_handshake_read();
    return;
  }
  // Flush the alert we queued, then close with OpenSSL's reason.
  state_ = state::open;
  begin_close(make_error(errc::tls_handshake_failed, peer() + ": " + why));
}

void transport::read_tls() {
  thread_local std::vector<char> wire;
  auto& buf = read_buffer::local();
  auto cap = cfg_->read_chunk;
  if (wire.size() < cap)
    wire.resize(cap);
  bool drained = false; // the last recv emptied the socket
  for (int i = 0; i < max_reads_per_turn; ++i) {
    // Plaintext OpenSSL already holds goes first: it may be left from the
    // handshake's last flight or from before a pause.
    auto plain = buf.data(cap);
    std::size_t n = 0;
    int status = SSL_ERROR_NONE;
    std::string why;
    bool arm = false;
    int io_err = 0;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!tls_->ssl)
        return;
      ERR_clear_error();
      while (n < cap) {
        auto r = SSL_read(tls_->ssl, plain + n,
                          static_cast<int>(std::min(cap - n, max_record)));
        if (r > 0) {
          n += static_cast<std::size_t>(r);
          continue;
        }
        status = SSL_get_error(tls_->ssl, r);
        if (status != SSL_ERROR_WANT_READ && status != SSL_ERROR_ZERO_RETURN)
          why = tls_context::last_error(tls_->ssl);
        break;
      }
      // The next recv reuses the loop's buffer.
      tls_bio::keep_rest(tls_->in);
      // Reading may have answered the peer (a key update).
      io_err = push_locked(arm);
    }
    if (arm)
      arm_write();
    if (io_err != 0) {
      finish(errno_to_error(io_err, errc::write_failed, peer()));
      return;
    }
    if (n > 0) {
      std::size_t held = 0;
      auto chunk = buf.take(n, held);
      if (deliver_chunk(std::move(chunk), held))
        return; // paused; whoever drains the actor resumes us
      // One chunk's decryption per turn: the loop's other sockets go
      // next. What OpenSSL holds (or the socket) is read on our next turn.
      post([this] { read_some(); });
      return;
    }
    if (status == SSL_ERROR_ZERO_RETURN) {
      on_eof(caf::error{}); // close_notify: a clean end
      return;
    }
    if (status != SSL_ERROR_WANT_READ) {
      finish(make_error(errc::tls_failed, peer() + ": " + why));
      return;
    }
    if (drained) {
      arm_read();
      return;
    }
    auto got = ::recv(fd_, wire.data(), cap, MSG_DONTWAIT);
    if (got > 0) {
      any_read_ = true;
      last_read_ = timeouts::now();
      std::lock_guard<std::mutex> guard{mtx_};
      if (!tls_->ssl)
        return;
      // Decrypted in place by the SSL_read round at the top of the loop.
      tls_bio::lend(tls_->in, wire.data(), static_cast<std::size_t>(got));
      drained = static_cast<std::size_t>(got) < cap;
      continue;
    }
    if (got == 0) {
      on_eof(make_error(errc::tls_truncated,
                        peer() + ": peer closed the connection without TLS "
                                 "close_notify; data may be cut short"));
      return;
    }
    if (recv_failed())
      continue;
    return;
  }
  post([this] { read_some(); });
}

bool transport::tls_encrypt_locked(const bytes& data) {
  auto ssl = tls_->ssl;
  std::size_t pos = 0;
  while (pos < data.size()) {
    auto len = std::min(data.size() - pos, max_record);
    tls_->more = pos + len < data.size();
    auto r = SSL_write(ssl, data.data() + pos, static_cast<int>(len));
    if (r <= 0)
      break;
    pos += static_cast<std::size_t>(r);
  }
  tls_->more = false;
  return pos == data.size();
}

void transport::tls_shutdown_locked() {
  if (!tls_ || !tls_->ssl || !tls_->ready || tls_->close_notify_sent)
    return;
  tls_->close_notify_sent = true;
  ERR_clear_error();
  SSL_shutdown(tls_->ssl);
  ERR_clear_error();
}

void transport::tls_release_locked(ring<ack>& acks) {
  if (!tls_)
    return;
  for (; !tls_->early.empty(); tls_->early.pop_front()) {
    auto& x = tls_->early.front();
    if (x.to)
      acks.push_back(ack{0, std::move(x.to), x.mid});
  }
  tls_->early_bytes = 0;
  if (tls_->ssl) {
    SSL_free(tls_->ssl);
    tls_->ssl = nullptr;
  }
}

} // namespace tcpactor
