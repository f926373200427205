#pragma once

// One client thread: its own epoll loop driving its share of the
// connections in one mode. The main thread steers all of them through a
// `control` and reads their `counters` for progress and the summary.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "histogram.hpp"
#include "options.hpp"

namespace tcpactor_bench {

using clock_type = std::chrono::steady_clock;

/// Where the whole run stands; only the main thread moves it, forward only.
enum class phase : int {
  setup,   // opening connections (pingpong, stream and hold)
  warmup,  // traffic, left out of the figures
  measure, // traffic, counted
  hold,    // hold mode: connections idle
  check,   // hold mode: one echo per connection
  done,    // stop and close everything
};

/// Shared between the main thread and every load thread.
struct control {
  std::atomic<phase> now{phase::setup};
  /// Load threads that finished setup (or, in hold mode, the check).
  std::atomic<std::size_t> ready{0};
  std::atomic<std::size_t> checked{0};
};

/// Counters one load thread writes and others read. Single writer: the
/// owner bumps them with a relaxed load and store, not a locked add.
struct counters {
  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> bytes{0};     // echoed bytes received
  std::atomic<uint64_t> connects{0};  // connections established
  std::atomic<uint64_t> completed{0}; // connect mode: full loops
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> open{0};       // connections open right now
  std::atomic<uint64_t> handshakes{0}; // TLS handshakes completed
  std::atomic<uint64_t> resumed{0};    // of which resumed a session
};

/// The server address, resolved once by main.
struct target {
  sockaddr_storage addr{};
  socklen_t len = 0;
  bool ipv4_loopback = false;
};

/// The pattern every connection sends: pseudo-random bytes, long enough that
/// any slice of up to `slice` bytes starting below `period` is contiguous.
struct pattern {
  static constexpr std::size_t period = 1'048'573; // odd, not a power of 2
  static constexpr std::size_t slice = 256 * 1024;
  std::vector<unsigned char> bytes;
  pattern();
};

class load_thread {
public:
  /// `tls`: the client context when --tls is on, else null; it must
  /// outlive the thread.
  load_thread(const options& opts, const target& dst, const pattern& pat,
              control& ctl, std::size_t first_conn, std::size_t conn_count,
              SSL_CTX* tls);

  load_thread(const load_thread&) = delete;
  load_thread& operator=(const load_thread&) = delete;
  ~load_thread();

  /// Runs until the control says `done`.
  void run();

  counters stats;
  /// Latency samples taken during `measure` (hold mode: during `check`).
  histogram latency;
  /// "what: why" -> count, e.g. "connect: Connection refused" -> 3.
  std::map<std::string, uint64_t> error_kinds;
  /// Wall time the setup phase took in this thread, seconds.
  double setup_seconds = 0;
  /// What the first completed TLS handshake negotiated, e.g. "TLSv1.3" and
  /// "TLS_AES_256_GCM_SHA384"; empty without TLS.
  std::string tls_protocol;
  std::string tls_cipher;

private:
  enum class conn_state : uint8_t {
    idle,
    connecting,
    handshaking, // TLS: TCP is up, the handshake is not done yet
    open,
    checked,
    failed
  };

  struct conn {
    int fd = -1;
    uint32_t gen = 0; // tells a stale epoll event from the slot's new socket
    conn_state state = conn_state::idle;
    uint32_t events = 0;    // the epoll interest set now registered
    uint64_t sent = 0;      // offset of the next byte to send
    uint64_t received = 0;  // offset of the next echoed byte expected
    uint64_t goal = 0;      // pingpong/connect/hold: end of this message
    uint64_t base = 0;      // offset of this connection's stream in pattern
    uint64_t msg_start = 0; // --framing: offset of this message's header
    clock_type::time_point started;
    SSL* ssl = nullptr; // TLS only
    /// TLS: the length of an SSL_write that wanted a retry; OpenSSL insists
    /// on the same length next time, though the stream window may have grown.
    std::size_t write_retry = 0;
    /// TLS: SSL_read wants the socket writable (a post-handshake message).
    bool read_wants_write = false;
  };

  bool open_conn(std::size_t i);
  /// `graceful`: TLS sends close_notify first (and, with --tls-resume,
  /// keeps the session for the slot's next connection).
  void close_conn(conn& c, bool graceful = false);
  void fail(conn& c, const std::string& what, int err);
  void fail(conn& c, const std::string& what, const std::string& why);
  void set_events(conn& c, uint32_t events);
  void on_event(std::size_t i, uint32_t events);
  void on_connected(std::size_t i);
  void continue_handshake(std::size_t i);
  void on_established(std::size_t i);
  void on_readable(std::size_t i);
  /// One read and its handling; false when there is nothing more to read
  /// now or the connection failed.
  bool read_once(std::size_t i);
  void on_echo_complete(std::size_t i);
  void start_message(conn& c);
  bool flush(conn& c);
  /// --framing: the next bytes of the current message to write, from
  /// c.sent on; at most `pattern::slice`.
  const unsigned char* framed_chunk(conn& c, std::size_t& len);
  /// --framing: whether `len` bytes read at c.received are the message's.
  bool framed_echo_matches(const conn& c, const unsigned char* buf,
                           std::size_t len) const;
  /// --framing: where the current message's payload starts in the pattern.
  std::size_t payload_offset(const conn& c) const {
    auto msg = c.msg_start / (header_size_ + opts_.size);
    return (c.base + msg * opts_.size) % pattern::period;
  }
  void refill_setup();
  void start_check();
  void report_checked();
  void bump(std::atomic<uint64_t>& x, uint64_t n = 1) {
    x.store(x.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t tag(std::size_t i) const {
    return (uint64_t{conns_[i].gen} << 32) | i;
  }

  // TLS extension point (issue 4): every byte to and from the server passes
  // through these two. A TLS mode keeps an SSL* per conn, adds a handshaking
  // state between connecting and open, and calls SSL_write/SSL_read here.
  ssize_t io_write(conn& c, const unsigned char* buf, std::size_t len);
  ssize_t io_read(conn& c, unsigned char* buf, std::size_t len);
  /// Maps a failed SSL_read/SSL_write to the plain path's conventions:
  /// -1 with errno EAGAIN (want read/write), 0 (close_notify), -1 with the
  /// socket's errno, or -1 with EPROTO and the reason in tls_reason_.
  ssize_t tls_io_failed(conn& c, int rc, bool reading);

  const options& opts_;
  const target& dst_;
  const pattern& pat_;
  control& ctl_;
  std::size_t first_conn_;
  std::vector<conn> conns_;
  int epfd_ = -1;
  phase phase_ = phase::setup;
  std::size_t next_open_ = 0;  // setup: next connection to open
  std::size_t connecting_ = 0; // connects in flight
  std::size_t pending_ = 0;    // setup: not yet open or failed; check: unechoed
  bool checking_ = false;      // hold: the check has started
  bool checked_reported_ = false;
  std::vector<std::size_t> idle_slots_; // connect: slots to reopen
  std::size_t next_source_ = 0;         // round-robin over --local-addrs
  std::vector<unsigned char> rbuf_;
  /// --framing: header length (0: raw), the header every message carries
  /// (all have S bytes), and room to write it with the payload's start in
  /// one call, so a small message is one segment as in raw mode.
  std::size_t header_size_ = 0;
  unsigned char header_[8] = {};
  std::vector<unsigned char> frame_buf_;
  SSL_CTX* tls_;
  std::string sni_;
  /// --tls-resume: the last session of each slot, offered on reconnect.
  std::vector<SSL_SESSION*> sessions_;
  /// Why the last TLS call failed with EPROTO; fail() consumes it.
  std::string tls_reason_;
};

} // namespace tcpactor_bench
