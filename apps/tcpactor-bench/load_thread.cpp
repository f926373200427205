#include "load_thread.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "tls_client.hpp"

namespace tcpactor_bench {

namespace {

/// Connects one thread keeps in flight while it opens its connections:
/// enough to fill a 1024-entry accept queue quickly without overflowing it.
constexpr std::size_t max_connecting = 256;

constexpr std::size_t read_size = 64 * 1024;

constexpr int max_events = 256;

/// Distinct error causes one thread keeps apart; further ones are lumped
/// together, so a server failing in many ways cannot grow the summary (or
/// the map) without bound.
constexpr std::size_t max_error_kinds = 8;

/// How long epoll_wait sleeps when nothing happens, so the thread notices a
/// phase change soon.
constexpr int idle_wait_ms = 20;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

} // namespace

pattern::pattern() : bytes(period + slice) {
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (std::size_t i = 0; i < period; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    bytes[i] = static_cast<unsigned char>(x >> 24);
  }
  // A slice that starts near the end continues with the period's start.
  std::copy_n(bytes.begin(), slice, bytes.begin() + period);
}

load_thread::load_thread(const options& opts, const target& dst,
                         const pattern& pat, control& ctl,
                         std::size_t first_conn, std::size_t conn_count,
                         SSL_CTX* tls)
    : opts_(opts), dst_(dst), pat_(pat), ctl_(ctl), first_conn_(first_conn),
      conns_(conn_count), rbuf_(read_size), tls_(tls) {
  if (tls_ != nullptr) {
    sni_ = sni_name(opts);
    if (opts.tls_resume)
      sessions_.assign(conn_count, nullptr);
  }
  for (std::size_t i = 0; i < conn_count; ++i)
    conns_[i].base = ((first_conn + i) * 104'729) % pattern::period;
  if (opts.frame_header != 0) {
    header_size_ = opts.frame_header;
    uint64_t length = opts.size + (opts.frame_inclusive ? header_size_ : 0);
    for (std::size_t k = 0; k < header_size_; ++k) {
      auto shift = 8 * (opts.frame_big_endian ? header_size_ - 1 - k : k);
      header_[k] = static_cast<unsigned char>(length >> shift);
    }
    frame_buf_.resize(header_size_ + std::min(opts.size, pattern::slice));
  }
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0)
    throw std::runtime_error(std::string{"epoll_create1: "} +
                             std::strerror(errno));
}

load_thread::~load_thread() {
  for (auto& c : conns_)
    close_conn(c);
  for (auto* s : sessions_)
    SSL_SESSION_free(s);
  if (epfd_ >= 0)
    ::close(epfd_);
}

// -- I/O: the TLS extension point --------------------------------------------

ssize_t load_thread::io_write(conn& c, const unsigned char* buf,
                              std::size_t len) {
  if (c.ssl == nullptr)
    return ::send(c.fd, buf, len, MSG_NOSIGNAL);
  // The caller's `len` never shrinks while `sent` stands still (the window
  // only opens, the message end stays), so the retried length always fits.
  if (c.write_retry != 0)
    len = std::min(len, c.write_retry);
  std::size_t written = 0;
  errno = 0; // SSL_ERROR_SYSCALL reads it; a stale EAGAIN would stall us
  int rc = SSL_write_ex(c.ssl, buf, len, &written);
  if (rc == 1) {
    c.write_retry = 0;
    return static_cast<ssize_t>(written);
  }
  auto n = tls_io_failed(c, rc, false);
  if (n < 0 && errno == EAGAIN)
    c.write_retry = len;
  return n;
}

ssize_t load_thread::io_read(conn& c, unsigned char* buf, std::size_t len) {
  if (c.ssl == nullptr)
    return ::recv(c.fd, buf, len, 0);
  std::size_t got = 0;
  errno = 0; // as in io_write
  int rc = SSL_read_ex(c.ssl, buf, len, &got);
  if (rc == 1)
    return static_cast<ssize_t>(got);
  return tls_io_failed(c, rc, true);
}

ssize_t load_thread::tls_io_failed(conn& c, int rc, bool reading) {
  int sys = errno;
  switch (int err = SSL_get_error(c.ssl, rc)) {
    case SSL_ERROR_WANT_READ:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      errno = EAGAIN;
      // A write that wants writable waits for EPOLLOUT anyway (flush).
      if (reading)
        c.read_wants_write = true;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      if (sys != 0 && ERR_peek_error() == 0) {
        errno = sys;
        return -1;
      }
      [[fallthrough]];
    default:
      tls_reason_ = tls_failure(c.ssl, err, sys);
      errno = EPROTO;
      return -1;
  }
}

// -- the loop
// ------------------------------------------------------------------

void load_thread::run() {
  auto setup_start = clock_type::now();
  auto setup_limit = 10.0 + static_cast<double>(conns_.size()) / 2000.0;
  bool setup_done = false;
  bool check_started = false;
  if (opts_.mode == bench_mode::connect) {
    // Connect mode has no setup: its slots open their first connection as
    // soon as the warm-up starts.
    for (std::size_t i = 0; i < conns_.size(); ++i)
      idle_slots_.push_back(i);
    setup_done = true;
    ctl_.ready.fetch_add(1);
  } else {
    pending_ = conns_.size();
  }
  epoll_event events[max_events];
  for (;;) {
    phase_ = ctl_.now.load(std::memory_order_acquire);
    if (phase_ == phase::done)
      break;
    if (!setup_done) {
      refill_setup();
      if (pending_ == 0 || seconds_since(setup_start) > setup_limit) {
        for (auto& c : conns_) {
          if (c.state == conn_state::connecting)
            fail(c, "connect", "no answer within the setup time");
          else if (c.state == conn_state::handshaking)
            fail(c, "handshake", "not done within the setup time");
          else if (c.state == conn_state::idle)
            fail(c, "connect", "not attempted within the setup time");
        }
        setup_done = true;
        setup_seconds = seconds_since(setup_start);
        ctl_.ready.fetch_add(1);
      }
    }
    if (phase_ == phase::check && !check_started) {
      check_started = true;
      start_check();
    }
    if (opts_.mode == bench_mode::connect &&
        (phase_ == phase::warmup || phase_ == phase::measure)) {
      // Reopen here, not from the handlers: a connect that fails at once
      // must not recurse into the next one.
      auto slots = std::move(idle_slots_);
      idle_slots_.clear();
      for (auto i : slots)
        open_conn(i);
    }
    int timeout = idle_slots_.empty() ? idle_wait_ms : 0;
    int n = epoll_wait(epfd_, events, max_events, timeout);
    if (n < 0 && errno != EINTR)
      throw std::runtime_error(std::string{"epoll_wait: "} +
                               std::strerror(errno));
    for (int k = 0; k < n; ++k) {
      auto i = static_cast<std::size_t>(events[k].data.u64 & 0xffffffffu);
      auto gen = static_cast<uint32_t>(events[k].data.u64 >> 32);
      if (conns_[i].fd < 0 || conns_[i].gen != gen)
        continue; // the socket this event was for is gone
      on_event(i, events[k].events);
    }
  }
  if (check_started) {
    for (auto& c : conns_)
      if (c.state == conn_state::open) {
        error_kinds["check: no echo before the deadline"]++;
        bump(stats.errors);
      }
  }
  for (auto& c : conns_)
    close_conn(c, true);
}

void load_thread::refill_setup() {
  while (next_open_ < conns_.size() && connecting_ < max_connecting)
    open_conn(next_open_++);
}

void load_thread::start_check() {
  std::vector<std::size_t> open;
  for (std::size_t i = 0; i < conns_.size(); ++i)
    if (conns_[i].state == conn_state::open)
      open.push_back(i);
  // Count first: a write that fails below decrements pending_.
  pending_ = open.size();
  checking_ = true;
  for (auto i : open)
    if (conns_[i].state == conn_state::open)
      start_message(conns_[i]);
  if (pending_ == 0)
    report_checked();
}

void load_thread::report_checked() {
  if (checked_reported_)
    return;
  checked_reported_ = true;
  ctl_.checked.fetch_add(1);
}

// -- connections
// ----------------------------------------------------------------

bool load_thread::open_conn(std::size_t i) {
  auto& c = conns_[i];
  ++c.gen;
  c.sent = c.received = c.goal = 0;
  c.write_retry = 0;
  c.read_wants_write = false;
  c.started = clock_type::now();
  c.fd = ::socket(dst_.addr.ss_family,
                  SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  c.state = conn_state::connecting;
  if (c.fd < 0) {
    fail(c, "socket", errno);
    return false;
  }
  ++connecting_;
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (dst_.ipv4_loopback && opts_.local_addrs > 1) {
    // Pick the port at connect() time, per 4-tuple, not at bind() time:
    // otherwise every source address still shares one port range.
    setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    sockaddr_in src{};
    src.sin_family = AF_INET;
    auto host = 1 + (next_source_++ % opts_.local_addrs);
    src.sin_addr.s_addr = htonl((127u << 24) | static_cast<uint32_t>(host));
    if (::bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) {
      fail(c, "bind", errno);
      return false;
    }
  }
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.u64 = tag(i);
  c.events = EPOLLOUT;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    fail(c, "epoll_ctl", errno);
    return false;
  }
  if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&dst_.addr),
                dst_.len) == 0) {
    on_connected(i);
    return true;
  }
  if (errno != EINPROGRESS) {
    fail(c, "connect", errno);
    return false;
  }
  return true;
}

void load_thread::close_conn(conn& c, bool graceful) {
  if (c.fd < 0)
    return;
  if (c.ssl != nullptr) {
    if (graceful && c.state != conn_state::handshaking) {
      // One non-blocking try: close_notify tells the server this was an
      // orderly end, not a truncation; its answer is not awaited.
      SSL_shutdown(c.ssl);
      if (!sessions_.empty() && SSL_session_reused(c.ssl) == 0) {
        // A resumed session is already the stored one.
        auto i = static_cast<std::size_t>(&c - conns_.data());
        auto* s = SSL_get1_session(c.ssl);
        if (s != nullptr && SSL_SESSION_is_resumable(s) == 1) {
          SSL_SESSION_free(sessions_[i]);
          sessions_[i] = s;
        } else {
          SSL_SESSION_free(s);
        }
      }
    }
    SSL_free(c.ssl);
    c.ssl = nullptr;
    ERR_clear_error(); // a failed shutdown must not blame the next call
  }
  ::close(c.fd); // also leaves the epoll set: we never dup the fd
  c.fd = -1;
  c.events = 0;
  if (c.state == conn_state::open || c.state == conn_state::checked)
    stats.open.store(stats.open.load(std::memory_order_relaxed) - 1,
                     std::memory_order_relaxed);
}

void load_thread::fail(conn& c, const std::string& what, int err) {
  if (err == EPROTO && !tls_reason_.empty()) {
    auto why = std::move(tls_reason_);
    tls_reason_.clear();
    return fail(c, what, "TLS: " + why);
  }
  fail(c, what, std::string{std::strerror(err)});
}

void load_thread::fail(conn& c, const std::string& what,
                       const std::string& why) {
  auto was = c.state;
  if ((was == conn_state::connecting || was == conn_state::handshaking) &&
      c.fd >= 0)
    --connecting_;
  close_conn(c);
  c.state = conn_state::failed;
  if (phase_ == phase::done)
    return; // closing anyway: not an error of the server
  auto kind = what + ": " + why;
  if (error_kinds.size() >= max_error_kinds && !error_kinds.contains(kind))
    kind = what + ": (further causes not told apart)";
  error_kinds[kind]++;
  bump(stats.errors);
  auto i = static_cast<std::size_t>(&c - conns_.data());
  switch (opts_.mode) {
    case bench_mode::connect:
      c.state = conn_state::idle;
      idle_slots_.push_back(i);
      break;
    case bench_mode::hold:
      if (checking_ && was == conn_state::open && --pending_ == 0)
        report_checked();
      [[fallthrough]];
    default:
      if (!checking_ &&
          (was == conn_state::connecting || was == conn_state::handshaking ||
           was == conn_state::idle))
        --pending_;
  }
}

void load_thread::set_events(conn& c, uint32_t events) {
  // Until the read that wanted it runs again, flush must not drop EPOLLOUT.
  if (c.read_wants_write)
    events |= EPOLLOUT;
  if (c.events == events)
    return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag(static_cast<std::size_t>(&c - conns_.data()));
  if (epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev) != 0)
    return fail(c, "epoll_ctl", errno);
  c.events = events;
}

void load_thread::on_event(std::size_t i, uint32_t events) {
  auto& c = conns_[i];
  auto gen = c.gen;
  if (c.state == conn_state::connecting) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err != 0)
      return fail(c, "connect", err);
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
      on_connected(i);
    return;
  }
  if (c.state == conn_state::handshaking)
    return continue_handshake(i);
  if (c.read_wants_write && (events & EPOLLOUT)) {
    c.read_wants_write = false;
    events |= EPOLLIN;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
    on_readable(i);
  if ((events & EPOLLOUT) && c.fd >= 0 && c.gen == gen)
    flush(c);
}

void load_thread::on_connected(std::size_t i) {
  if (tls_ == nullptr)
    return on_established(i);
  auto& c = conns_[i];
  c.state = conn_state::handshaking;
  c.ssl = SSL_new(tls_);
  if (c.ssl == nullptr) {
    tls_reason_ = tls_failure(nullptr, SSL_ERROR_SSL, 0);
    return fail(c, "handshake", EPROTO);
  }
  SSL_set_connect_state(c.ssl);
  if (SSL_set_fd(c.ssl, c.fd) != 1 ||
      (!sni_.empty() && SSL_set_tlsext_host_name(c.ssl, sni_.c_str()) != 1) ||
      (!sessions_.empty() && sessions_[i] != nullptr &&
       SSL_set_session(c.ssl, sessions_[i]) != 1)) {
    tls_reason_ = tls_failure(c.ssl, SSL_ERROR_SSL, 0);
    return fail(c, "handshake", EPROTO);
  }
  continue_handshake(i);
}

void load_thread::continue_handshake(std::size_t i) {
  auto& c = conns_[i];
  errno = 0; // as in io_write
  int rc = SSL_do_handshake(c.ssl);
  if (rc == 1) {
    bump(stats.handshakes);
    if (SSL_session_reused(c.ssl) == 1)
      bump(stats.resumed);
    if (tls_protocol.empty()) {
      tls_protocol = SSL_get_version(c.ssl);
      tls_cipher = SSL_get_cipher_name(c.ssl);
    }
    return on_established(i);
  }
  int sys = errno;
  switch (int err = SSL_get_error(c.ssl, rc)) {
    case SSL_ERROR_WANT_READ:
      return set_events(c, EPOLLIN);
    case SSL_ERROR_WANT_WRITE:
      return set_events(c, EPOLLOUT);
    default:
      tls_reason_ = tls_failure(c.ssl, err, sys);
      return fail(c, "handshake", EPROTO);
  }
}

void load_thread::on_established(std::size_t i) {
  auto& c = conns_[i];
  --connecting_;
  c.state = conn_state::open;
  bump(stats.connects);
  bump(stats.open);
  if (opts_.mode != bench_mode::connect && !checking_ && pending_ > 0)
    --pending_;
  switch (opts_.mode) {
    case bench_mode::pingpong:
    case bench_mode::connect:
      start_message(c);
      break;
    case bench_mode::stream:
      flush(c);
      break;
    case bench_mode::hold:
      set_events(c, EPOLLIN); // an early close or stray byte is an error
      break;
  }
}

void load_thread::start_message(conn& c) {
  c.msg_start = c.sent;
  c.goal = c.sent + header_size_ + opts_.size;
  if (opts_.mode != bench_mode::connect) // connect: times the whole loop
    c.started = clock_type::now();
  flush(c);
}

bool load_thread::flush(conn& c) {
  for (;;) {
    std::size_t len = 0;
    if (opts_.mode == bench_mode::stream) {
      auto in_flight = c.sent - c.received;
      if (in_flight >= opts_.window)
        break;
      len = std::min<uint64_t>(opts_.size, opts_.window - in_flight);
    } else {
      if (c.sent >= c.goal)
        break;
      len = c.goal - c.sent;
    }
    const unsigned char* buf = nullptr;
    if (header_size_ == 0) {
      len = std::min(len, pattern::slice);
      buf = pat_.bytes.data() + (c.base + c.sent) % pattern::period;
    } else {
      buf = framed_chunk(c, len);
    }
    auto n = io_write(c, buf, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        set_events(c, EPOLLIN | EPOLLOUT);
        return c.fd >= 0;
      }
      fail(c, "write", errno);
      return false;
    }
    c.sent += static_cast<uint64_t>(n);
    // TLS: a short write is one finished record (partial-write mode), not a
    // full send buffer; the next SSL_write says WANT_WRITE if it is full.
    if (static_cast<std::size_t>(n) < len && c.ssl == nullptr) {
      // The send buffer is full: wait until it drains.
      set_events(c, EPOLLIN | EPOLLOUT);
      return c.fd >= 0;
    }
  }
  set_events(c, EPOLLIN);
  return c.fd >= 0;
}

const unsigned char* load_thread::framed_chunk(conn& c, std::size_t& len) {
  auto k = c.sent - c.msg_start; // offset in the message, header first
  if (k >= header_size_) {
    len = std::min(len, pattern::slice);
    auto off = (payload_offset(c) + (k - header_size_)) % pattern::period;
    return pat_.bytes.data() + off;
  }
  // The header's rest and as much payload as fits behind it: the same
  // bytes again when a write is retried, as TLS requires.
  auto head = header_size_ - k;
  auto payload = std::min(opts_.size, frame_buf_.size() - header_size_);
  std::copy_n(header_ + k, head, frame_buf_.data());
  std::copy_n(pat_.bytes.data() + payload_offset(c), payload,
              frame_buf_.data() + head);
  len = head + payload;
  return frame_buf_.data();
}

bool load_thread::framed_echo_matches(const conn& c, const unsigned char* buf,
                                      std::size_t len) const {
  // In these modes one message is in flight, so what arrives is its echo.
  auto k = c.received - c.msg_start;
  if (k < header_size_) {
    auto head = std::min<std::size_t>(header_size_ - k, len);
    if (std::memcmp(buf, header_ + k, head) != 0)
      return false;
    buf += head;
    len -= head;
    k += head;
  }
  auto off = (payload_offset(c) + (k - header_size_)) % pattern::period;
  return len == 0 || std::memcmp(buf, pat_.bytes.data() + off, len) == 0;
}

void load_thread::on_readable(std::size_t i) {
  auto& c = conns_[i];
  auto gen = c.gen;
  // Level-triggered epoll sees only the socket: bytes that OpenSSL already
  // pulled in (read-ahead) or decrypted but did not hand out would wait
  // for the next packet, maybe forever. Drain them before returning.
  do {
    if (!read_once(i))
      return;
  } while (c.fd >= 0 && c.gen == gen && c.ssl != nullptr &&
           SSL_has_pending(c.ssl) == 1);
}

bool load_thread::read_once(std::size_t i) {
  auto& c = conns_[i];
  auto n = io_read(c, rbuf_.data(), rbuf_.size());
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      if (c.read_wants_write)
        set_events(c, c.events);
      return false;
    }
    fail(c, "read", errno);
    return false;
  }
  if (n == 0) {
    fail(c, "read", "the server closed the connection");
    return false;
  }
  auto len = static_cast<uint64_t>(n);
  if (c.received + len > c.sent) {
    fail(c, "verify", "more bytes came back than were sent");
    return false;
  }
  if (header_size_ == 0) {
    auto off = (c.base + c.received) % pattern::period;
    if (std::memcmp(rbuf_.data(), pat_.bytes.data() + off, len) != 0) {
      fail(c, "verify", "echoed bytes differ from those sent");
      return false;
    }
  } else if (!framed_echo_matches(c, rbuf_.data(), len)) {
    fail(c, "verify", "echoed frame differs from the one sent");
    return false;
  }
  c.received += len;
  bump(stats.bytes, len);
  if (opts_.mode == bench_mode::stream)
    flush(c);
  else if (c.received == c.goal)
    on_echo_complete(i);
  return true;
}

void load_thread::on_echo_complete(std::size_t i) {
  auto& c = conns_[i];
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                clock_type::now() - c.started)
                .count();
  bump(stats.messages);
  switch (opts_.mode) {
    case bench_mode::pingpong:
      if (phase_ == phase::measure)
        latency.record(static_cast<uint64_t>(ns));
      start_message(c);
      break;
    case bench_mode::connect:
      if (phase_ == phase::measure)
        latency.record(static_cast<uint64_t>(ns));
      bump(stats.completed);
      close_conn(c, true);
      c.state = conn_state::idle;
      idle_slots_.push_back(i);
      break;
    case bench_mode::hold:
      latency.record(static_cast<uint64_t>(ns));
      c.state = conn_state::checked;
      if (--pending_ == 0)
        report_checked();
      break;
    case bench_mode::stream:
      break;
  }
}

} // namespace tcpactor_bench
