#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <caf/abstract_actor.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/attachable.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_id.hpp>

#include "actor_bridge.hpp"
#include "asio_glue.hpp"
#include "ring.hpp"
#include "runtime_impl.hpp"
#include "stream_transport.hpp"
#include "tcpactor/bytes.hpp"
#include "tcpactor/caller.hpp"
#include "tcpactor/config.hpp"
#include "tcpactor/fwd.hpp"
#include "tcpactor/tls.hpp"
#include "timeouts.hpp"
#include "tls_context.hpp"

namespace tcpactor {

class framing_layer;
class tls_transport;

/// Tag of the in-order message that tells a connection actor to quit after
/// `closed`. Never an exit message: those jump the queue.
using quit_atom = caf::atom_constant<caf::atom("tcpa_quit")>;

/// What may be asked of a connection, by anyone: its `caller`, its
/// connection actor, a client's owner through the client handle.
enum class command : uint8_t { write, close, shutdown_write };

/// Owns one socket and the layers on it (layer.hpp): its state, the
/// registry entry, close and deadlines. It is itself a (mailbox-less) CAF
/// actor, so it can be the sender of the chunks the bridge delivers:
/// replies, `write` and `close` reach it directly in `enqueue`, on the
/// replying thread, with no extra hop.
///
/// Threads: the socket, timers and `state_` belong to the socket's I/O loop.
/// Actor threads only touch the write queue and the flow-control counters,
/// under `mtx_`. Everything the target sees is sent from the I/O loop, so
/// `closed` is always last.
///
/// Lifetime: every pending Asio handler and every message that names it as
/// sender holds a strong reference, so a late reply never reaches a closed or
/// reused descriptor. All Asio objects are destroyed in `finish`, on the
/// loop, so a socket manager may outlive the runtime's loops.
///
/// Base: `abstract_actor`, not `monitorable_actor`, whose condition variable,
/// fail state and second mutex cost an idle connection 104 bytes for
/// supervision nobody asks of a connection. Monitors still work (attach);
/// links are refused.
class socket_manager final : public caf::abstract_actor {
public:
  /// The life of a connection. `enter` is the only way to change it:
  /// connecting (client) -> handshaking (TLS) -> open -> closing -> closed;
  /// any state may go straight to closed.
  enum class state : uint8_t { connecting, handshaking, open, closing, closed };

  socket_manager(caf::actor_config& cfg, runtime::impl& rt,
                 asio::io_context& loop,
                 std::shared_ptr<const connection_config> conn_cfg);

  ~socket_manager() override;

  /// Makes a socket manager, adopts `sock` if given (an accepted socket on
  /// `loop`), and only then registers it with the runtime, which may close it
  /// from then on.
  static caf::strong_actor_ptr
  make(runtime::impl& rt, asio::io_context& loop,
       std::shared_ptr<const connection_config> conn_cfg, uint64_t owner = 0,
       std::optional<loop_socket> sock = {}, const tcp::endpoint& remote = {});

  static socket_manager* from(const caf::strong_actor_ptr& ptr) noexcept {
    return static_cast<socket_manager*>(
        caf::actor_cast<caf::abstract_actor*>(ptr));
  }
  /// The loop as an execution unit if handlers run on it, else null.
  caf::execution_unit* unit() const noexcept {
    return cfg_->handlers_on_io_thread ? lc_->unit : nullptr;
  }

  // -- actor interface (any thread) -------------------------------------------

  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* eu) override;

  /// Runs `ptr` once the connection finished (at once if it has).
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
  /// The peer's address, or "" before a client's connect succeeded; over a
  /// Unix-domain socket, its path (remote and local alike).
  std::string remote_host() const;
  uint16_t remote_port() const noexcept { return remote_.port(); }
  std::string local_host() const;
  uint16_t local_port() const noexcept { return local_.port(); }
  asio::ip::address remote_address() const { return remote_.address(); }
  /// SO_PEERCRED of a Unix-domain socket while it is open; else nothing.
  std::optional<peer_credentials> credentials() const;
  /// "host:port" of the peer, for messages: the address once connected,
  /// before that (a client) the host and port it was asked to reach.
  std::string peer() const;
  const connection_config& config() const noexcept { return *cfg_; }
  /// True once TLS was set up (`use_tls`), handshake done or not.
  bool uses_tls() const noexcept { return tls_ != nullptr; }
  /// What the TLS handshake agreed on; empty for plain TCP. Fixed before
  /// the target sees the connection.
  const tls_info& tls() const noexcept;

  // -- setup, before the loop sees the socket manager -------------------------

  /// Sets who receives `bytes`, `error` and `closed`. With `quit_after`,
  /// `(quit_atom)` follows `closed` (for connection actors we spawned).
  void set_target(caf::strong_actor_ptr target, bool quit_after);

  /// Speaks TLS through `ctx`: a server waits for the client's hello once
  /// `handshake` is called, a client starts its handshake once connected.
  /// Adopts `ssl`.
  void use_tls(std::shared_ptr<tls_context> ctx, SSL* ssl,
               std::chrono::milliseconds handshake_timeout);

  // -- commands (any thread) --------------------------------------------------

  /// Makes `target` (the connection actor we spawned) the receiver and begins
  /// reading. If the connection closed meanwhile, `target` still gets
  /// `closed` and `quit_atom`, so it never lingers.
  void start(caf::strong_actor_ptr target);

  /// Server side of TLS: runs the handshake, then `done` on the loop. A
  /// failed handshake finishes the connection with the reason instead.
  void handshake(std::function<void()> done);

  /// Server side of the PROXY protocol (proxy_reader.hpp): reads the header
  /// within `timeout` and takes its addresses, then runs `done` on the loop.
  /// A bad, missing or late header finishes the connection instead.
  void read_proxy_header(proxy_protocol which,
                         std::chrono::milliseconds timeout,
                         std::function<void()> done);

  /// Resolves and connects, within `cfg.connect_timeout`.
  void connect(const client_config& cfg);

  /// The one path of every write, close and shutdown, whoever asks. With
  /// `reply_to`, the request `mid` is answered: a write once its bytes
  /// reached the kernel (or with `errc::closed` if refused, or the reason if
  /// the connection closed before), a close or shutdown at once. Returns
  /// false if a write was refused: the connection is closing or closed, or
  /// the payload cannot be framed (which aborts the connection).
  bool execute(command cmd, const bytes& data = {},
               caf::strong_actor_ptr reply_to = nullptr,
               caf::message_id mid = caf::message_id{});

  /// Tells the target its listener drains: `(drain_atom)`, once.
  void notify_drain();

  /// True once `notify_drain` ran: handlers may finish up and close.
  bool draining() const noexcept {
    return draining_.load(std::memory_order_relaxed);
  }

  /// Sets what runs in the connection actor when `(drain_atom)` arrives
  /// there. Call from inside that actor only.
  void set_on_drain(std::function<void()> fn);

  /// Drops the drain hook: it may hold a `caller`, i.e. this connection.
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

  // -- deadlines (timeouts.cpp calls these on the loop) -----------------------

  static constexpr uint32_t not_watched = UINT32_MAX;

  /// Did a per-phase timeout expire? Cheap: no lock unless one did.
  bool deadline_passed(timeouts::clock::time_point now);

  /// Ends the connection for the timeout that expired.
  void on_deadline(timeouts::clock::time_point now);

private:
  friend class timeouts;
  friend class stream_transport;
  friend class tls_transport;
  friend class actor_bridge;
  friend class framing_layer;
  friend class proxy_reader;
  friend class runtime::impl; // the registry links
  struct ack;

  // -- command path -----------------------------------------------------------

  /// Queues `data` (framed, encrypted by the layers below) behind everything
  /// queued before; when `ack_to` is set, answers `ack_mid` once the bytes
  /// reached the kernel. False if closing.
  bool write(const bytes& data, caf::strong_actor_ptr ack_to,
             caf::message_id ack_mid);
  void close();
  void shutdown_write();

  // -- I/O loop only: lifecycle -----------------------------------------------

  /// The one place `state_` changes.
  void enter(state next) noexcept;
  void adopt(loop_socket sock, const tcp::endpoint& remote);
  /// Flushes what is queued, then finishes with `reason`.
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
  /// Connects to the Unix-domain socket `path`, retrying while its backlog
  /// is full until `deadline`.
  void connect_unix(const std::string& path,
                    std::chrono::steady_clock::time_point deadline,
                    std::chrono::milliseconds limit);
  /// Starts reading through the layers.
  void begin_reading();
  /// After a pause: what the layers hold goes up first, then the socket is
  /// read again.
  void resume_reading();
  /// The peer ended its side (or a codec gave up): through the layers to the
  /// bridge, which closes once the replies are out.
  void stop_reading(caf::error reason);

  /// Reading began: starts the per-phase deadlines, if any is set.
  void watch_deadlines();
  /// Which timeout expired, if any.
  caf::error expired(timeouts::clock::time_point now);

  // -- layers -----------------------------------------------------------------

  /// The layer writes go down to: TLS if any, else the stream.
  lower_layer& lower() noexcept;
  /// The layer the lowest reader hands up to: the codec if any, else the
  /// bridge.
  upper_layer& top() noexcept;

  // -- helpers ----------------------------------------------------------------

  /// Runs `fn` on the loop, unless the connection finished. Posting under
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
  /// The runtime's counters; count into `metrics().local()`.
  metrics_registry& metrics() const noexcept { return lc_->rt->metrics; }

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
    // Bytes read behind a PROXY header, for the TLS handshake or the first
    // chunk; the loop's only.
    bytes early_input;
  };

  /// Loop: takes the bytes read behind a PROXY header, if any.
  bytes take_early_input();
  /// The rare block, made if missing. Requires `mtx_`.
  rare& rare_locked();
  /// Moves the acks of fully written data to `done`. Requires `mtx_`.
  void take_acks_locked(std::vector<ack>& done);
  void answer(std::vector<ack>& done);

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
  // of the finish_observer (a listener) that made this connection (0: none).
  socket_manager* reg_prev_ = nullptr;
  socket_manager* reg_next_ = nullptr;
  uint64_t owner_ = 0;
  // A client's "host:port" as configured, for messages before (or without)
  // a connection; null on accepted connections. Over a Unix-domain socket,
  // its path, on both sides.
  std::unique_ptr<const std::string> target_name_;
  int fd_ = -1;
  bool bind_local_ = false; // a client binds local_ before connecting
  // A Unix-domain socket: remote_ and local_ stay empty, TCP options are
  // skipped. Its descriptor sits in a tcp-typed Asio socket, which is sound
  // as long as nothing asks that socket for an endpoint: waits, accept and
  // close do not depend on the address family.
  bool unix_ = false;
  bool registered_ = false; // in the registry; guarded by the runtime's mutex

  // -- I/O loop only ----------------------------------------------------------

  state state_ = state::connecting;
  bool quit_after_ = false;
  std::atomic<bool> draining_{false};
  uint32_t watch_index_ = not_watched;
  std::optional<loop_socket> socket_;
  std::unique_ptr<tcp::resolver> resolver_;
  std::unique_ptr<asio::steady_timer> timer_; // only while one is needed
  // Set before the loop reads (client: before connect; server: in start()
  // under mtx_), taken by finish() under mtx_.
  caf::strong_actor_ptr target_;
  // Why the connection ends: a client's last connect error, the reason an
  // end of stream keeps while the replies go out; after finish(): under
  // mtx_, read by attach().
  caf::error close_reason_;
  // When reading began (lifetime metric and timeout), or, while a TLS
  // server shakes hands, when that began; zero until then.
  timeouts::clock::time_point opened_at_;

  // -- layers (layer.hpp) -----------------------------------------------------

  stream_transport stream_;
  actor_bridge bridge_;
  // Only on TLS connections and with a codec, so a plain raw one pays two
  // pointers. The TLS layer's OpenSSL objects are guarded by mtx_ (reads and
  // writes come from any thread).
  std::unique_ptr<tls_transport> tls_;
  std::unique_ptr<framing_layer> framing_;

  // -- shared, guarded by mtx_ ------------------------------------------------

  // mtx_ is abstract_actor's: nothing else locks it on a socket manager,
  // since attach and detach are ours and links are refused.
  std::unique_ptr<rare> rare_;
  bool finished_ = false; // finish() ran: start() must not wait for it
  bool writable_ = true;  // false once closing: writes are refused
};

} // namespace tcpactor
