#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <caf/abstract_actor.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/attachable.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_id.hpp>

#include "asio_glue.hpp"
#include "ring.hpp"
#include "runtime_impl.hpp"
#include "tcpactor/bytes.hpp"
#include "tcpactor/config.hpp"
#include "tcpactor/fwd.hpp"
#include "tcpactor/tls.hpp"
#include "timeouts.hpp"
#include "tls_context.hpp"

namespace tcpactor {

/// Tag of the in-order message that tells a connection actor to quit after
/// `closed`. Never an exit message: those jump the queue.
using quit_atom = caf::atom_constant<caf::atom("tcpa_quit")>;

/// Owns one socket: reads it, writes it, closes it, and reports to one target
/// actor. It is itself a (mailbox-less) CAF actor, so it can be the sender of
/// the chunks it delivers: replies, `write` and `close` reach it directly in
/// `enqueue`, on the replying thread, with no extra hop.
///
/// Threads: the socket, timers and `state_` belong to the socket's I/O loop.
/// Actor threads only touch the write queue and the flow-control counters,
/// under `mtx_`. Everything the target sees is sent from the I/O loop, so
/// `closed` is always last.
///
/// Lifetime: every pending Asio handler and every message that names it as
/// sender holds a strong reference, so a late reply never reaches a closed or
/// reused descriptor. All Asio objects are destroyed in `finish`, on the
/// loop, so a transport may outlive the runtime's loops.
///
/// Base: `abstract_actor`, not `monitorable_actor`, whose condition variable,
/// fail state and second mutex cost an idle connection 104 bytes for
/// supervision nobody asks of a transport. Monitors still work (attach);
/// links are refused.
class transport final : public caf::abstract_actor {
public:
  enum class state : uint8_t { connecting, handshaking, open, closing, closed };

  transport(caf::actor_config& cfg, runtime::impl& rt, asio::io_context& loop,
            std::shared_ptr<const connection_config> conn_cfg);

  ~transport() override;

  /// Makes a transport, adopts `sock` if given (an accepted socket on
  /// `loop`), and only then registers it with the runtime, which may close it
  /// from then on.
  static caf::strong_actor_ptr
  make(runtime::impl& rt, asio::io_context& loop,
       std::shared_ptr<const connection_config> conn_cfg, uint64_t owner = 0,
       std::optional<loop_socket> sock = {}, const tcp::endpoint& remote = {});

  static transport* from(const caf::strong_actor_ptr& ptr) noexcept {
    return static_cast<transport*>(caf::actor_cast<caf::abstract_actor*>(ptr));
  }

  // -- actor interface (any thread) -------------------------------------------

  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* eu) override;

  /// Runs `ptr` once the transport finished (at once if it has).
  void attach(caf::attachable_ptr ptr) override;
  std::size_t detach(const caf::attachable::token& what) override;
  void add_link(caf::abstract_actor*) override {
    // nop: refused in add_backlink
  }
  void remove_link(caf::abstract_actor*) override {
    // nop
  }
  bool add_backlink(caf::abstract_actor*) override { return false; }
  bool remove_backlink(caf::abstract_actor*) override { return false; }

  // -- properties (fixed once open) -------------------------------------------

  connection_id conn_id() const noexcept { return conn_id_; }
  /// The peer's address, or "" before a client's connect succeeded.
  std::string remote_host() const;
  uint16_t remote_port() const noexcept { return remote_.port(); }
  std::string local_host() const;
  uint16_t local_port() const noexcept { return local_.port(); }
  asio::ip::address remote_address() const { return remote_.address(); }
  /// "host:port" of the peer, for messages: the address once connected,
  /// before that (a client) the host and port it was asked to reach.
  std::string peer() const;
  const connection_config& config() const noexcept { return *cfg_; }
  /// What the TLS handshake agreed on; empty for plain TCP. Fixed before
  /// the target sees the connection.
  const tls_info& tls() const noexcept;

  // -- setup, before the loop sees the transport ------------------------------

  /// Sets who receives `bytes`, `error` and `closed`. With `quit_after`,
  /// `(quit_atom)` follows `closed` (for connection actors we spawned).
  void set_target(caf::strong_actor_ptr target, bool quit_after);

  /// Speaks TLS through `ctx` on this transport: a server waits for the
  /// client's hello once `handshake` is called, a client starts its
  /// handshake once connected. Adopts `ssl`.
  void use_tls(std::shared_ptr<tls_context> ctx, SSL* ssl,
               std::chrono::milliseconds handshake_timeout);

  // -- commands (any thread) --------------------------------------------------

  /// Makes `target` (the connection actor we spawned) the receiver and begins
  /// reading. If the transport closed meanwhile, `target` still gets
  /// `closed` and `quit_atom`, so it never lingers.
  void start(caf::strong_actor_ptr target);

  /// Server side of TLS: runs the handshake, then `done` on the loop. A
  /// failed handshake finishes the transport with the reason instead.
  void handshake(std::function<void()> done);

  /// Resolves and connects, within `cfg.connect_timeout`.
  void connect(const client_config& cfg);

  /// Queues `data` behind everything queued before; when `ack_to` is set,
  /// answers `ack_mid` once the bytes reached the kernel. False if closing.
  bool write(const bytes& data, caf::strong_actor_ptr ack_to = nullptr,
             caf::message_id ack_mid = caf::message_id{});

  /// Flushes what is queued, then closes with no error.
  void close();

  /// Flushes what is queued, then ends the write side; reading goes on.
  void shutdown_write();

  /// Tells the target its listener drains: `(drain_atom)`, once.
  void notify_drain();

  /// True once `notify_drain` ran: handlers may finish up and close.
  bool draining() const noexcept {
    return draining_.load(std::memory_order_relaxed);
  }

  /// Sets what runs in the connection actor when `(drain_atom)` arrives
  /// there. Call from inside that actor only.
  void set_on_drain(std::function<void()> fn);

  /// Drops the drain hook: it may hold a `caller`, i.e. this transport.
  /// From the connection actor only, as it terminates.
  void clear_on_drain();

  /// Runs the drain hook, if any. From the connection actor only.
  void run_on_drain();

  /// Closes at once, dropping queued bytes; `reason` goes to the target.
  void abort(caf::error reason);

  /// Closes without telling the target: the connect handler refused.
  void reject(caf::error reason);

  /// The target actor terminated; closes if still open.
  void target_down(const caf::error& reason);

  // -- deadlines (timeouts.cpp calls these on the loop)
  // ------------------------

  static constexpr uint32_t not_watched = UINT32_MAX;

  /// Did a per-phase timeout expire? Cheap: no lock unless one did.
  bool deadline_passed(timeouts::clock::time_point now);

  /// Ends the connection for the timeout that expired.
  void on_deadline(timeouts::clock::time_point now);

private:
  friend class timeouts;
  friend struct tls_bio;      // calls tls_out_locked
  friend class runtime::impl; // the registry links
  struct ack;

  /// Reading began: starts the per-phase deadlines, if any is set.
  void watch_deadlines();
  /// Which timeout expired, if any.
  caf::error expired(timeouts::clock::time_point now);

  // -- I/O loop only: lifecycle (transport.cpp) -------------------------------

  void adopt(loop_socket sock, const tcp::endpoint& remote);
  void begin_close(caf::error reason);
  void finish(caf::error reason, bool notify_target = true);
  void fill_endpoints(bool ask_remote);
  /// Non-blocking, TCP_NODELAY, endpoints known, state open.
  void prepare_socket(bool ask_remote);
  void on_connected();
  /// Connected (and TLS agreed): tell the target, start reading.
  void on_ready();
  void try_connect(tcp::resolver::results_type endpoints,
                   tcp::resolver::results_type::iterator pos);

  // -- I/O loop only: read path (transport_read.cpp) --------------------------

  void read_some();
  void arm_read();
  /// A recv() failed: true to retry at once (EINTR); otherwise waits for
  /// readability (EAGAIN) or fails the connection.
  bool recv_failed();
  void on_eof(caf::error reason);
  /// I/O loop: the queue is flushed; sends FIN (half-close).
  void shut_write_side();
  /// Sends one chunk to the target; true if reading must now pause. Flow
  /// control counts `held`, the memory the chunk keeps, not its size.
  bool deliver_chunk(bytes chunk, std::size_t held);

  // -- TLS layer (transport_tls.cpp) ------------------------------------------

  struct tls_state;
  /// I/O loop: starts the handshake (timer, first flight or first read).
  void begin_handshake();
  /// I/O loop: waits for handshake bytes and hands them to a crypto thread.
  void arm_handshake_read();
  /// Crypto thread: feeds `in` to OpenSSL and sends what it answers.
  void handshake_step(std::vector<char> in);
  /// I/O loop: acts on the outcome of one handshake step.
  void on_handshake_step(int rc, int ssl_err, int io_err, bool arm,
                         std::string why);
  /// I/O loop: the read path for TLS (decrypts, then delivers).
  void read_tls();
  /// Queues the encryption of `data`. Requires `mtx_`.
  bool tls_encrypt_locked(const bytes& data);
  /// OpenSSL's write BIO: sends one piece of ciphertext at once if nothing
  /// is queued, else (or what the kernel did not take) queues it. Called
  /// inside SSL_* calls, so it requires `mtx_` like them.
  void tls_out_locked(const char* data, std::size_t n);
  /// Sends close_notify unless sent. Requires `mtx_`.
  void tls_shutdown_locked();
  /// Frees the OpenSSL state; returns the acks of unsent early writes.
  /// Requires `mtx_`.
  void tls_release_locked(ring<ack>& acks);

  // -- any thread: write path (transport_write.cpp) ---------------------------

  /// Writes the queue now unless the loop owns flushing; sets `arm` if the
  /// loop must wait for writability. Requires `mtx_`. Returns errno or 0.
  int push_locked(bool& arm);
  /// Moves the acks of fully written data to `done`. Requires `mtx_`.
  void take_acks_locked(std::vector<ack>& done);

  /// Writes from the queue until it is empty or the kernel pushes back.
  /// Requires `mtx_`. Returns an errno value, 0 on success.
  int flush_locked();
  void arm_write();
  void on_writable();
  void request_done(uint64_t request_id);

  /// Must reading pause? Requires `mtx_`.
  bool must_pause_locked() const noexcept;
  /// May a paused reader resume? Requires `mtx_`.
  bool may_resume_locked() const noexcept;

  // -- helpers ----------------------------------------------------------------

  /// Runs `fn` on the loop, unless the transport finished. Posting under
  /// `mtx_` matters: finish() sets `finished_` under it before the runtime
  /// may destroy the loop, so the loop outlives every post that got through.
  template <class F>
  void post(F fn) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (finished_)
      return;
    asio::post(*lc_->loop, [self = caf::strong_actor_ptr{ctrl()},
                            f = std::move(fn)]() mutable { f(); });
  }

  void send_to_target(caf::message_id mid, caf::message msg);
  void respond(const caf::strong_actor_ptr& to, caf::message_id mid,
               caf::message msg);
  caf::strong_actor_ptr self_ptr() { return caf::strong_actor_ptr{ctrl()}; }
  /// The loop as an execution unit if handlers run on it, else null.
  caf::execution_unit* unit() const noexcept {
    return cfg_->handlers_on_io_thread ? lc_->unit : nullptr;
  }

  // -- immutable after setup --------------------------------------------------
  // (Small fields sit where they fill padding: every byte here is paid by
  // every idle connection.)

  // The loop's context: the loop, its deadline sweep and execution unit,
  // and the runtime.
  const io_pool::loop_context* lc_;
  // Shared by all connections of a listener: a copy each would cost 64 bytes.
  std::shared_ptr<const connection_config> cfg_;
  connection_id conn_id_;
  // Endpoints, not strings: an idle connection keeps 56 bytes instead of 100
  // or more, and the text is made only for the rare caller that asks.
  tcp::endpoint remote_;
  tcp::endpoint local_;
  // The runtime's registry (guarded by its mutex): list links, and the tag
  // of the finish_observer (a listener) that made this transport (0: none).
  transport* reg_prev_ = nullptr;
  transport* reg_next_ = nullptr;
  uint64_t owner_ = 0;
  // A client's "host:port" as configured, for messages before (or without)
  // a connection; null on accepted connections.
  std::unique_ptr<const std::string> target_name_;
  int fd_ = -1;
  bool bind_local_ = false; // a client binds local_ before connecting
  bool registered_ = false; // in the registry; guarded by the runtime's mutex

  // -- I/O loop only ----------------------------------------------------------

  state state_ = state::connecting;
  std::optional<loop_socket> socket_;
  std::unique_ptr<tcp::resolver> resolver_;
  std::unique_ptr<asio::steady_timer> timer_; // only while one is needed
  // Set before the loop reads (client: before connect; server: in start()
  // under mtx_), taken by finish() under mtx_.
  caf::strong_actor_ptr target_;
  bool quit_after_ = false;
  bool reading_ = false;
  bool peer_eof_ = false;          // the peer ended its side (half-close)
  bool shut_wr_requested_ = false; // shutdown_write() seen
  bool write_shut_ = false;        // FIN sent
  bool read_armed_ = false;
  std::atomic<bool> draining_{false};
  uint64_t last_request_ = 0;
  caf::error close_reason_; // after finish(): under mtx_, read by attach()
  // Deadlines: timestamps from the loop's cached clock.
  uint32_t watch_index_ = not_watched;
  bool any_read_ = false;
  bool write_waiting_ = false; // the loop waits for writability
  timeouts::clock::time_point opened_at_;
  timeouts::clock::time_point last_read_;
  timeouts::clock::time_point write_wait_since_;
  // Only on TLS connections, so a plain one pays one pointer. Its OpenSSL
  // objects are guarded by mtx_ (reads and writes come from any thread).
  std::unique_ptr<tls_state> tls_;

  // -- shared, guarded by mtx_ ------------------------------------------------

  struct ack {
    uint64_t end = 0; // total bytes queued when this write ends
    caf::strong_actor_ptr to;
    caf::message_id mid;
  };

  /// What most connections never use: write acknowledgements (a client's
  /// `request(write)`), a drain hook, monitors. Made on first use, under
  /// mtx_, so an idle connection pays one pointer for all of it.
  struct rare {
    ring<ack> acks;
    // Byte positions for acks, counted from this block's creation.
    uint64_t queued_total = 0;
    uint64_t written_total = 0;
    std::function<void()> on_drain; // the connection actor's thread only
    caf::attachable_ptr attached;   // monitors, told in finish()
  };

  /// The rare block, made if missing. Requires `mtx_`.
  rare& rare_locked();

  // mtx_ is abstract_actor's: nothing else locks it on a transport, since
  // attach and detach are ours and links are refused.
  std::unique_ptr<rare> rare_;
  bool finished_ = false;    // finish() ran: start() must not wait for it
  bool writable_ = true;     // false once closing: writes are refused
  bool connected_ = false;   // direct sends allowed
  bool write_armed_ = false; // the loop owns flushing the queue
  bool read_paused_ = false; // the reader stopped for flow control
  bool eof_pending_ = false; // peer sent FIN; close once replies are done
  ring<bytes> wq_;
  std::size_t wq_offset_ = 0; // bytes of wq_.front() already written
  std::size_t wq_bytes_ = 0;
  ring<std::pair<uint64_t, std::size_t>> pending_; // request -> size
  std::size_t pending_bytes_ = 0;
};

struct transport::tls_state {
  std::shared_ptr<tls_context> ctx;
  std::chrono::milliseconds handshake_timeout;
  // Guarded by mtx_: actor threads encrypt, the loop decrypts.
  SSL* ssl = nullptr;
  bool ready = false; // handshake done: writes encrypt directly
  bool close_notify_sent = false;
  bool more = false; // the record being sealed is not a write's last
  // What the read BIO gives OpenSSL: the loop's last recv, lent for one
  // round of SSL_read, after what OpenSSL left of earlier ones (or a
  // handshake step's input), which is kept here.
  struct input {
    const char* lent = nullptr;
    std::size_t lent_size = 0;
    std::vector<char> kept;
    std::size_t kept_pos = 0;
  } in;
  // Writes made before the handshake finished, in order, with their acks.
  struct early_write {
    bytes data;
    caf::strong_actor_ptr to;
    caf::message_id mid;
  };
  ring<early_write> early;
  std::size_t early_bytes = 0;
  // I/O loop only.
  std::function<void()> on_handshake;
  caf::error eof_reason; // why the read side ended (truncation)
  // Written once by the handshake's last step, before anyone reads it.
  tls_info info;
};

} // namespace tcpactor
