// The TLS layer: handshake on the crypto threads, decryption on the loop,
// encryption on the writer's thread; ciphertext goes through the stream.

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "read_buffer.hpp"
#include "socket_manager.hpp"
#include "tls_context.hpp"
#include "tls_transport.hpp"

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
  using input = tls_transport::input;

  static BIO* make_writer(tls_transport* t) {
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
    static_cast<tls_transport*>(BIO_get_data(b))->out_locked(data, n);
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

tls_transport::tls_transport(socket_manager& mgr,
                             std::shared_ptr<tls_context> ctx, SSL* ssl,
                             std::chrono::milliseconds handshake_timeout)
    : mgr_(mgr), ctx_(std::move(ctx)), handshake_timeout_(handshake_timeout),
      ssl_(ssl) {
  // OpenSSL holds no buffers for an idle connection this way.
  SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
  SSL_set_bio(ssl, tls_bio::make_reader(&in_), tls_bio::make_writer(this));
}

tls_transport::~tls_transport() {
  release_ssl_locked(); // nobody else holds the layer any more
}

void tls_transport::out_locked(const char* data, std::size_t n) {
  mgr_.stream_.send_or_queue_locked(data, n, more_);
}

bool tls_transport::send_locked(const bytes& data) {
  return encrypt_locked(data);
}

void tls_transport::keep_early_locked(const bytes& data,
                                      caf::strong_actor_ptr ack_to,
                                      caf::message_id ack_mid) {
  // Encrypted once the handshake is done, in this order.
  early_.push_back({data, std::move(ack_to), ack_mid});
  early_bytes_ += data.size();
}

void tls_transport::begin_handshake(std::function<void()> done) {
  on_handshake_ = std::move(done);
  mgr_.enter(socket_manager::state::handshaking);
  mgr_.opened_at_ = timeouts::clock::now();
  auto limit = handshake_timeout_;
  mgr_.timer_ = std::make_unique<asio::steady_timer>(*mgr_.lc_->loop);
  mgr_.timer_->expires_after(limit);
  mgr_.timer_->async_wait([this, self = mgr_.self_ptr(), limit](error_code ec) {
    if (ec || mgr_.state_ != socket_manager::state::handshaking)
      return;
    mgr_.finish(make_error(errc::tls_handshake_timeout,
                           mgr_.peer() + ": no TLS handshake within " +
                               std::to_string(limit.count()) + "ms"));
  });
  if (SSL_is_server(ssl_)) {
    // Nothing to say before the client's hello, which may have come behind
    // a PROXY header already.
    auto early = mgr_.take_early_input();
    if (early.empty()) {
      arm_handshake_read();
      return;
    }
    std::vector<char> in(early.data(), early.data() + early.size());
    asio::post(mgr_.lc_->rt->crypto(),
               [this, self = mgr_.self_ptr(), in{std::move(in)}]() mutable {
                 handshake_step(std::move(in));
               });
    return;
  }
  asio::post(mgr_.lc_->rt->crypto(),
             [this, self = mgr_.self_ptr()] { handshake_step({}); });
}

void tls_transport::arm_handshake_read() {
  mgr_.socket_->async_wait(
      tcp::socket::wait_read, [this, self = mgr_.self_ptr()](error_code ec) {
        if (mgr_.state_ != socket_manager::state::handshaking)
          return;
        if (ec) {
          if (ec != asio::error::operation_aborted)
            mgr_.finish(to_error(ec, errc::tls_handshake_failed, mgr_.peer()));
          return;
        }
        std::vector<char> in(max_record + 512);
        std::size_t got = 0;
        while (got < max_handshake_read) {
          if (got == in.size())
            in.resize(std::min(in.size() * 2, max_handshake_read));
          auto n =
              ::recv(mgr_.fd_, in.data() + got, in.size() - got, MSG_DONTWAIT);
          if (n > 0) {
            got += static_cast<std::size_t>(n);
            metrics_registry::add(mgr_.metrics().local().bytes_in,
                                  static_cast<uint64_t>(n));
            continue;
          }
          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
          if (n == 0 && got == 0) {
            mgr_.finish(make_error(
                errc::tls_handshake_failed,
                mgr_.peer() + ": peer closed the connection during the "
                              "TLS handshake"));
            return;
          }
          if (n < 0) {
            int err = errno; // before peer(), which may overwrite it
            mgr_.finish(
                errno_to_error(err, errc::tls_handshake_failed, mgr_.peer()));
            return;
          }
          break; // FIN after data: OpenSSL reads what came first
        }
        in.resize(got);
        asio::post(mgr_.lc_->rt->crypto(),
                   [this, self = mgr_.self_ptr(), in{std::move(in)}]() mutable {
                     handshake_step(std::move(in));
                   });
      });
}

void tls_transport::handshake_step(std::vector<char> in) {
  int rc;
  int ssl_err = 0;
  int io_err = 0;
  bool arm = false;
  std::string why;
  std::vector<socket_manager::ack> done;
  {
    std::lock_guard<std::mutex> guard{mgr_.mtx_};
    if (mgr_.finished_ || !ssl_)
      return;
    tls_bio::append(in_, in.data(), in.size());
    ERR_clear_error();
    rc = SSL_do_handshake(ssl_);
    if (rc != 1) {
      ssl_err = SSL_get_error(ssl_, rc);
      if (ssl_err != SSL_ERROR_WANT_READ)
        why = tls_context::last_error(ssl_);
    } else {
      info_ = tls_context::info(ssl_);
      ready_ = true;
      // Writes made while we shook hands go first, in order: a writer that
      // sees `ready_` from now on queues behind them.
      for (; !early_.empty(); early_.pop_front()) {
        auto& x = early_.front();
        encrypt_locked(x.data);
        if (x.to) {
          auto& r = mgr_.rare_locked();
          r.acks.push_back(
              socket_manager::ack{r.queued_total, std::move(x.to), x.mid});
        }
      }
      early_bytes_ = 0;
    }
    // Our next flight, or the alert that tells the peer why we give up, went
    // out through the write BIO; what the kernel did not take is queued.
    io_err = mgr_.stream_.push_locked(arm);
    mgr_.take_acks_locked(done);
  }
  mgr_.answer(done);
  mgr_.post([this, rc, ssl_err, io_err, arm, why{std::move(why)}]() mutable {
    on_handshake_step(rc, ssl_err, io_err, arm, std::move(why));
  });
}

void tls_transport::on_handshake_step(int rc, int ssl_err, int io_err, bool arm,
                                      std::string why) {
  if (mgr_.state_ != socket_manager::state::handshaking)
    return;
  if (io_err != 0) {
    mgr_.finish(
        errno_to_error(io_err, errc::tls_handshake_failed, mgr_.peer()));
    return;
  }
  if (arm)
    mgr_.stream_.arm_write();
  if (rc == 1) {
    mgr_.timer_.reset();
    if (mgr_.owner_ != 0)
      mgr_.metrics().handshake_done(timeouts::clock::now() - mgr_.opened_at_);
    // Lifetime counts from the start of reading, not from here.
    mgr_.opened_at_ = {};
    mgr_.enter(socket_manager::state::open);
    if (auto fn = std::move(on_handshake_)) {
      on_handshake_ = nullptr;
      fn(); // the listener spawns the connection actor
    } else {
      mgr_.on_ready(); // a client
    }
    return;
  }
  if (ssl_err == SSL_ERROR_WANT_READ) {
    arm_handshake_read();
    return;
  }
  // Flush the alert we queued, then close with OpenSSL's reason.
  mgr_.enter(socket_manager::state::open);
  mgr_.begin_close(
      make_error(errc::tls_handshake_failed, mgr_.peer() + ": " + why));
}

void tls_transport::read_some() {
  auto& st = mgr_.stream_;
  if (mgr_.state_ != socket_manager::state::open || !st.reading_ ||
      st.read_armed_)
    return;
  thread_local std::vector<char> wire;
  auto& buf = read_buffer::local();
  auto cap = mgr_.cfg_->read_chunk;
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
      std::lock_guard<std::mutex> guard{mgr_.mtx_};
      if (!ssl_)
        return;
      ERR_clear_error();
      while (n < cap) {
        auto r = SSL_read(ssl_, plain + n,
                          static_cast<int>(std::min(cap - n, max_record)));
        if (r > 0) {
          n += static_cast<std::size_t>(r);
          continue;
        }
        status = SSL_get_error(ssl_, r);
        if (status != SSL_ERROR_WANT_READ && status != SSL_ERROR_ZERO_RETURN)
          why = tls_context::last_error(ssl_);
        break;
      }
      // The next recv reuses the loop's buffer.
      tls_bio::keep_rest(in_);
      // Reading may have answered the peer (a key update).
      io_err = st.push_locked(arm);
    }
    if (arm)
      st.arm_write();
    if (io_err != 0) {
      mgr_.finish(errno_to_error(io_err, errc::write_failed, mgr_.peer()));
      return;
    }
    if (n > 0) {
      std::size_t held = 0;
      auto chunk = buf.take(n, held);
      if (up_->consume(std::move(chunk), held))
        return; // paused; whoever drains the actor resumes us
      if (!st.reading_)
        return; // the layer above gave up (a codec's bad frame)
      // One chunk's decryption per turn: the loop's other sockets go
      // next. What OpenSSL holds (or the socket) is read on our next turn.
      mgr_.post([this] { read_some(); });
      return;
    }
    if (status == SSL_ERROR_ZERO_RETURN) {
      mgr_.stop_reading(caf::error{}); // close_notify: a clean end
      return;
    }
    if (status != SSL_ERROR_WANT_READ) {
      mgr_.finish(make_error(errc::tls_failed, mgr_.peer() + ": " + why));
      return;
    }
    if (drained) {
      st.arm_read();
      return;
    }
    auto got = st.recv_some(wire.data(), cap);
    if (got > 0) {
      std::lock_guard<std::mutex> guard{mgr_.mtx_};
      if (!ssl_)
        return;
      // Decrypted in place by the SSL_read round at the top of the loop.
      tls_bio::lend(in_, wire.data(), static_cast<std::size_t>(got));
      drained = static_cast<std::size_t>(got) < cap;
      continue;
    }
    if (got == 0) {
      mgr_.stop_reading(
          make_error(errc::tls_truncated,
                     mgr_.peer() + ": peer closed the connection without TLS "
                                   "close_notify; data may be cut short"));
      return;
    }
    if (st.recv_failed())
      continue;
    return;
  }
  mgr_.post([this] { read_some(); });
}

bool tls_transport::encrypt_locked(const bytes& data) {
  std::size_t pos = 0;
  while (pos < data.size()) {
    auto len = std::min(data.size() - pos, max_record);
    more_ = pos + len < data.size();
    // SSL_get_error reads this thread's error queue: a stale entry left by
    // other OpenSSL users in the process (libcaf_openssl never clears the
    // queue around its calls) would make a good call look failed.
    ERR_clear_error();
    auto r = SSL_write(ssl_, data.data() + pos, static_cast<int>(len));
    if (r <= 0)
      break;
    pos += static_cast<std::size_t>(r);
  }
  more_ = false;
  return pos == data.size();
}

void tls_transport::end_locked() {
  if (!ssl_ || !ready_ || close_notify_sent_)
    return;
  close_notify_sent_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

void tls_transport::release_ssl_locked() {
  if (ssl_) {
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
}

} // namespace tcpactor
