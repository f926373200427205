// The socket manager: the actor interface and command path, setup,
// connect, the state, deadlines and close. The layers it drives are in
// stream_transport.cpp, tls_transport.cpp, framing_layer.cpp and
// actor_bridge.cpp.

#include "socket_manager.hpp"

#include "framing_layer.hpp"
#include "proxy_reader.hpp"
#include "socket_options.hpp"
#include "tls_transport.hpp"
#include "unix_socket.hpp"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstring>

#include <sys/socket.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/make_actor.hpp>
#include <caf/sec.hpp>

#include "tcpactor/errors.hpp"
#include "tcpactor/log.hpp"

namespace tcpactor {

namespace {

std::atomic<connection_id> next_conn_id{0};

// How soon a Unix client asks again while the listener's backlog is full.
constexpr auto unix_retry = std::chrono::milliseconds{10};

} // namespace

socket_manager::socket_manager(
    caf::actor_config& cfg, runtime::impl& rt, asio::io_context& loop,
    std::shared_ptr<const connection_config> conn_cfg)
    : caf::abstract_actor(cfg), lc_(&rt.pool.context_of(loop)),
      cfg_(std::move(conn_cfg)), conn_id_(++next_conn_id), stream_(*this),
      bridge_(*this) {
  if (cfg_->framing.type != framing_config::codec::raw)
    framing_ = std::make_unique<framing_layer>(*this, cfg_->framing);
  stream_.set_upper(&top());
}

socket_manager::~socket_manager() {
  // finish() ran on the loop and released every Asio object.
}

lower_layer& socket_manager::lower() noexcept {
  if (tls_)
    return *tls_;
  return stream_;
}

upper_layer& socket_manager::top() noexcept {
  if (framing_)
    return *framing_;
  return bridge_;
}

namespace {

// connecting -> open (socket ready) -> [handshaking -> open] -> closing ->
// closed; any state may end at once. A failed handshake goes back to open to
// flush its alert through the normal close.
constexpr bool legal(socket_manager::state from, socket_manager::state to) {
  using st = socket_manager::state;
  switch (from) {
    case st::connecting:
      return to == st::open || to == st::closed;
    case st::open:
      return to == st::handshaking || to == st::closing || to == st::closed;
    case st::handshaking:
      return to == st::open || to == st::closed;
    case st::closing:
      return to == st::closed;
    case st::closed:
      return false;
  }
  return false;
}

} // namespace

void socket_manager::enter(state next) noexcept {
  assert(legal(state_, next));
  state_ = next;
}

caf::strong_actor_ptr
socket_manager::make(runtime::impl& rt, asio::io_context& loop,
                     std::shared_ptr<const connection_config> conn_cfg,
                     uint64_t owner, std::optional<loop_socket> sock,
                     const tcp::endpoint& remote) {
  caf::actor_config cfg;
  auto ptr = caf::make_actor<socket_manager, caf::strong_actor_ptr>(
      rt.sys.next_actor_id(), rt.sys.node(), &rt.sys, cfg, rt, loop,
      std::move(conn_cfg));
  auto t = from(ptr);
  t->owner_ = owner;
  if (sock)
    t->adopt(std::move(*sock), remote);
  rt.add(t);
  return ptr;
}

// -- actor interface ----------------------------------------------------------

void socket_manager::enqueue(caf::mailbox_element_ptr what,
                             caf::execution_unit*) {
  auto mid = what->mid;
  auto& xs = what->content();
  if (mid.is_response()) {
    // The target answered one delivered chunk.
    auto rid = mid.request_id().integer_value();
    if (xs.match_elements<bytes>()) {
      auto& reply = xs.get_as<bytes>(0);
      // Empty: nothing to write, in every codec.
      if (!reply.empty())
        write(reply, nullptr, caf::message_id{});
    } else if (xs.match_elements<caf::error>()) {
      // The handler failed, or its actor is gone (CAF bounces requests).
      auto& err = xs.get_as<caf::error>(0);
      auto why =
          make_error(errc::handler_failed, peer() + ": " + describe(err));
      if (cfg_->close_on_handler_error ||
          err == caf::sec::request_receiver_down) {
        abort(std::move(why));
      } else {
        // Reported from the loop like every event, so `closed` stays last.
        post([this, why{std::move(why)}]() mutable {
          if (state_ == state::open || state_ == state::closing)
            send_to_target(
                caf::make_message_id(),
                caf::make_message(error_atom::value, std::move(why)));
        });
      }
    }
    bridge_.request_done(rid);
    return;
  }
  auto reply_to = mid.is_request() ? what->sender : nullptr;
  if (xs.match_elements<write_atom, bytes>()) {
    execute(command::write, xs.get_as<bytes>(1), std::move(reply_to), mid);
    return;
  }
  if (xs.match_elements<close_atom>()) {
    execute(command::close, {}, std::move(reply_to), mid);
    return;
  }
  if (xs.match_elements<shutdown_write_atom>()) {
    execute(command::shutdown_write, {}, std::move(reply_to), mid);
    return;
  }
  if (reply_to)
    respond(reply_to, mid,
            caf::make_message(caf::make_error(caf::sec::unexpected_message)));
}

bool socket_manager::execute(command cmd, const bytes& data,
                             caf::strong_actor_ptr reply_to,
                             caf::message_id mid) {
  switch (cmd) {
    case command::write:
      if (write(data, reply_to, mid))
        return true;
      // Refused: closing, or a payload the codec cannot carry (aborted).
      if (reply_to)
        respond(reply_to, mid,
                caf::make_message(make_error(errc::closed, peer())));
      return false;
    case command::close:
      close();
      break;
    case command::shutdown_write:
      shutdown_write();
      break;
  }
  if (reply_to)
    respond(reply_to, mid, caf::message{});
  return true;
}

void socket_manager::attach(caf::attachable_ptr ptr) {
  if (!ptr)
    return;
  caf::error reason;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!finished_) {
      auto& head = rare_locked().attached;
      ptr->next.swap(head);
      head.swap(ptr);
      return;
    }
    // finish() wrote it under this lock, and nothing writes it after.
    reason = close_reason_;
  }
  ptr->actor_exited(reason ? reason : caf::error{caf::exit_reason::normal},
                    nullptr);
}

void socket_manager::set_on_drain(std::function<void()> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  rare_locked().on_drain = std::move(fn);
}

void socket_manager::clear_on_drain() {
  // Moved out under the lock, destroyed outside it: the hook may hold the
  // last caller, i.e. a reference to this transport.
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (rare_)
      fn.swap(rare_->on_drain);
  }
}

void socket_manager::run_on_drain() {
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (rare_)
      fn = rare_->on_drain;
  }
  // A copy, run outside the lock: the hook may write, close, or even set a
  // new hook. Drains are rare, so the copy costs nothing that matters.
  if (fn)
    fn();
}

std::size_t socket_manager::detach(const caf::attachable::token& what) {
  std::lock_guard<std::mutex> guard{mtx_};
  std::size_t count = 0;
  if (!rare_)
    return 0;
  auto* slot = &rare_->attached;
  while (*slot) {
    if ((*slot)->matches(what)) {
      auto next = std::move((*slot)->next);
      slot->swap(next);
      ++count;
    } else {
      slot = &(*slot)->next;
    }
  }
  return count;
}

void socket_manager::respond(const caf::strong_actor_ptr& to,
                             caf::message_id mid, caf::message msg) {
  if (!to)
    return;
  to->enqueue(caf::make_mailbox_element(self_ptr(), mid.response_id(), {},
                                        std::move(msg)),
              nullptr);
}

void socket_manager::send_to_target(caf::message_id mid, caf::message msg) {
  if (target_)
    target_->enqueue(
        caf::make_mailbox_element(self_ptr(), mid, {}, std::move(msg)), unit());
}

// -- setup --------------------------------------------------------------------

void socket_manager::adopt(loop_socket sock, const tcp::endpoint& remote) {
  socket_.emplace(std::move(sock));
  // The listener's view of the peer (unspecified if the peer had reset
  // already), which its per-address count used: asking again could name
  // another address when the slot is released.
  remote_ = remote;
  prepare_socket(false);
  std::lock_guard<std::mutex> guard{mtx_};
  stream_.connected_ = true;
}

void socket_manager::prepare_socket(bool ask_remote) {
  // Errors here only cost speed (Nagle) or are caught by the next syscall.
  error_code ec;
  socket_->non_blocking(true, ec);
  fill_endpoints(ask_remote);
  if (!unix_)
    apply_connection_options(fd_, *cfg_);
  enter(state::open);
}

void socket_manager::fill_endpoints(bool ask_remote) {
  fd_ = socket_->native_handle();
  // getsockname() by hand rather than local_endpoint(): the same call tells
  // an accepted Unix-domain socket from a TCP one, whose Asio type cannot.
  sockaddr_storage ss;
  auto len = static_cast<socklen_t>(sizeof(ss));
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_UNIX) {
      unix_ = true;
      // An accepted socket carries its listener's path; a client knows it.
      if (!target_name_)
        target_name_ = std::make_unique<const std::string>(
            unix_name(reinterpret_cast<const sockaddr_un&>(ss), len));
    } else if (len <= local_.capacity()) {
      std::memcpy(local_.data(), &ss, len);
      local_.resize(len);
    }
  }
  if (ask_remote && !unix_) {
    error_code ec;
    auto remote = socket_->remote_endpoint(ec);
    if (!ec)
      remote_ = remote;
  }
  if (framing_)
    framing_->set_peer(peer());
}

std::string socket_manager::remote_host() const {
  if (unix_)
    return *target_name_;
  return remote_.port() != 0 ? remote_.address().to_string() : std::string{};
}

std::string socket_manager::local_host() const {
  if (unix_)
    return *target_name_;
  return local_.port() != 0 ? local_.address().to_string() : std::string{};
}

std::string socket_manager::peer() const {
  if (remote_.port() != 0)
    return to_string(remote_);
  return target_name_ ? *target_name_ : std::string{};
}

std::optional<peer_credentials> socket_manager::credentials() const {
  if (!unix_)
    return std::nullopt;
  ucred cred{};
  auto len = static_cast<socklen_t>(sizeof(cred));
  {
    // finish() sets fd_ to -1 under this lock before it closes the socket,
    // so the descriptor asked here is still this connection's.
    std::lock_guard<std::mutex> guard{mtx_};
    if (fd_ < 0 || ::getsockopt(fd_, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
      return std::nullopt;
  }
  return peer_credentials{static_cast<int32_t>(cred.pid), cred.uid, cred.gid};
}

const tls_info& socket_manager::tls() const noexcept {
  static const tls_info plain;
  return tls_ ? tls_->info() : plain;
}

void socket_manager::set_target(caf::strong_actor_ptr target, bool quit_after) {
  target_ = std::move(target);
  quit_after_ = quit_after;
}

void socket_manager::use_tls(std::shared_ptr<tls_context> ctx, SSL* ssl,
                             std::chrono::milliseconds handshake_timeout) {
  tls_ = std::make_unique<tls_transport>(*this, std::move(ctx), ssl,
                                         handshake_timeout);
  tls_->set_upper(&top());
  // The stream hands nothing up: the TLS layer reads through it.
  stream_.set_upper(nullptr);
}

// -- commands -----------------------------------------------------------------

void socket_manager::start(caf::strong_actor_ptr target) {
  bool finished;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    finished = finished_;
    if (!finished) {
      target_ = target;
      quit_after_ = true;
    }
  }
  if (finished) {
    // Closed before the handler accepted it (e.g. runtime shutdown): the
    // loop may be gone, so tell the actor from here.
    for (auto& content : {caf::make_message(closed_atom::value),
                          caf::make_message(quit_atom::value)})
      target->enqueue(caf::make_mailbox_element(
                          self_ptr(), caf::make_message_id(), {}, content),
                      nullptr);
    return;
  }
  post([this] {
    if (state_ != state::open || stream_.reading_)
      return;
    begin_reading();
  });
}

void socket_manager::read_proxy_header(proxy_protocol which,
                                       std::chrono::milliseconds timeout,
                                       std::function<void()> done) {
  post([this, which, timeout, done{std::move(done)}]() mutable {
    if (state_ != state::open)
      return;
    proxy_reader::start(*this, which, timeout, std::move(done));
  });
}

bytes socket_manager::take_early_input() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!rare_)
    return {};
  return std::exchange(rare_->early_input, bytes{});
}

void socket_manager::handshake(std::function<void()> done) {
  post([this, done{std::move(done)}]() mutable {
    if (state_ != state::open || !tls_)
      return;
    tls_->begin_handshake(std::move(done));
  });
}

bool socket_manager::write(const bytes& data, caf::strong_actor_ptr ack_to,
                           caf::message_id ack_mid) {
  std::vector<ack> done;
  int err = 0;
  bool arm = false;
  bool overflow = false;
  bool failed = false;
  caf::error bad_frame;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!writable_)
      return false;
    auto early = tls_ ? tls_->early_bytes_locked() : 0;
    auto wire = framing_ ? cfg_->framing.wire_size(data.size()) : data.size();
    if (stream_.queued_locked() + early + wire > cfg_->write_queue_limit) {
      writable_ = false;
      overflow = true;
    } else {
      // One piece, or the codec's header and payload. The vector is the
      // writer thread's own, so a framed write allocates nothing for it;
      // cleared below, it holds no payload after the write.
      thread_local framing_layer::pieces out;
      out.clear();
      const bytes* first = &data;
      std::size_t count = 1;
      if (framing_) {
        bad_frame = framing_->encode(data, out);
        first = out.data();
        count = out.size();
      }
      if (bad_frame) {
        out.clear();
        writable_ = false;
      } else if (tls_ && !tls_->ready_locked()) {
        // Encrypted once the handshake is done, in this order; the ack
        // rides on the last piece.
        for (std::size_t i = 0; i < count; ++i)
          tls_->keep_early_locked(
              first[i], i + 1 == count ? std::move(ack_to) : nullptr, ack_mid);
        out.clear();
        return true;
      } else {
        auto& low = lower();
        for (std::size_t i = 0; i < count && !failed; ++i)
          failed = !low.send_locked(first[i]);
        if (ack_to) {
          auto& r = rare_locked();
          r.acks.push_back(ack{r.queued_total, std::move(ack_to), ack_mid});
        }
        out.clear();
        // Nothing in flight: write right here, on the actor's thread. A hop
        // to the I/O loop would cost a wakeup per reply.
        err = stream_.push_locked(arm);
        if (err != 0)
          writable_ = false;
        take_acks_locked(done);
      }
    }
  }
  answer(done);
  if (overflow) {
    abort(make_error(errc::write_overflow,
                     peer() + ": more than " +
                         std::to_string(cfg_->write_queue_limit) +
                         " bytes queued for a peer that does not read"));
    return false;
  }
  if (bad_frame) {
    // The peer would read something else than was written: nothing
    // half-framed goes out, and the target learns why.
    abort(std::move(bad_frame));
    return false;
  }
  if (failed)
    abort(make_error(errc::tls_failed, peer() + ": encryption failed"));
  else if (err != 0)
    abort(errno_to_error(err, errc::write_failed, peer()));
  else if (arm)
    post([this] { stream_.arm_write(); });
  return true;
}

void socket_manager::take_acks_locked(std::vector<ack>& done) {
  if (!rare_)
    return;
  auto& acks = rare_->acks;
  while (!acks.empty() && acks.front().end <= rare_->written_total) {
    done.push_back(std::move(acks.front()));
    acks.pop_front();
  }
}

void socket_manager::answer(std::vector<ack>& done) {
  for (auto& x : done)
    respond(x.to, x.mid, caf::message{});
}

socket_manager::rare& socket_manager::rare_locked() {
  if (!rare_) {
    rare_ = std::make_unique<rare>();
    // Positions count from here: what is queued now ends at the queue size.
    rare_->queued_total = stream_.queued_locked();
  }
  return *rare_;
}

void socket_manager::close() {
  post([this] { begin_close(caf::error{}); });
}

void socket_manager::shutdown_write() {
  {
    // Refuse later writes from now on, not from when the loop gets to it.
    std::lock_guard<std::mutex> guard{mtx_};
    writable_ = false;
  }
  post([this] {
    if (state_ != state::open || stream_.shut_wr_requested_)
      return;
    stream_.shut_wr_requested_ = true;
    bool arm = false;
    int err = 0;
    bool drained;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      writable_ = false;
      lower().end_locked();
      err = stream_.push_locked(arm);
      drained = stream_.queue_empty_locked();
    }
    if (err != 0) {
      finish(errno_to_error(err, errc::write_failed, peer()));
      return;
    }
    if (arm)
      stream_.arm_write();
    if (drained)
      stream_.shut_write_side();
  });
}

void socket_manager::notify_drain() {
  if (draining_.exchange(true))
    return;
  post([this] {
    if (state_ == state::open || state_ == state::closing)
      send_to_target(caf::make_message_id(),
                     caf::make_message(drain_atom::value));
  });
}

void socket_manager::abort(caf::error reason) {
  post([this, reason{std::move(reason)}]() mutable {
    finish(std::move(reason));
  });
}

void socket_manager::reject(caf::error reason) {
  post([this, reason{std::move(reason)}]() mutable {
    finish(std::move(reason), false);
  });
}

void socket_manager::target_down(const caf::error& reason) {
  post([this, reason] {
    if (state_ == state::closed)
      return;
    if (reason == caf::exit_reason::normal) {
      // The actor quit on its own: flush its replies, then close.
      begin_close(caf::error{});
      return;
    }
    finish(make_error(errc::handler_failed, peer() + ": " + describe(reason)),
           false);
  });
}

// -- reading ------------------------------------------------------------------

void socket_manager::begin_reading() {
  stream_.reading_ = true;
  opened_at_ = timeouts::clock::now();
  watch_deadlines();
  // What came behind a PROXY header is the stream's first chunk (under TLS
  // the handshake took it already).
  if (auto early = take_early_input(); !early.empty()) {
    stream_.any_read_ = true;
    stream_.last_read_ = timeouts::now();
    auto held = early.size();
    if (top().consume(std::move(early), held) || !stream_.reading_)
      return; // paused (resumed by whoever drains), or the layer gave up
  }
  lower().read_some();
}

void socket_manager::resume_reading() {
  // A codec first hands up the frames it still holds.
  if (top().resume() || !stream_.reading_)
    return;
  lower().read_some();
}

void socket_manager::stop_reading(caf::error reason) {
  stream_.reading_ = false;
  stream_.peer_eof_ = true;
  top().end_of_stream(std::move(reason));
}

// -- connect ------------------------------------------------------------------

void socket_manager::connect(const client_config& cfg) {
  post([this, cfg] {
    if (state_ != state::connecting)
      return;
    if (!cfg.unix_path.empty()) {
      target_name_ = std::make_unique<const std::string>(cfg.unix_path);
      unix_ = true;
      timer_ = std::make_unique<asio::steady_timer>(*lc_->loop);
      connect_unix(cfg.unix_path,
                   std::chrono::steady_clock::now() + cfg.connect_timeout,
                   cfg.connect_timeout);
      return;
    }
    target_name_ = std::make_unique<const std::string>(
        cfg.host + ":" + std::to_string(cfg.port));
    timer_ = std::make_unique<asio::steady_timer>(*lc_->loop);
    timer_->expires_after(cfg.connect_timeout);
    timer_->async_wait([this, self = self_ptr(), cfg](error_code ec) {
      if (ec || state_ != state::connecting)
        return;
      finish(make_error(errc::connect_timeout,
                        peer() + " after " +
                            std::to_string(cfg.connect_timeout.count()) +
                            "ms"));
    });
    resolver_ = std::make_unique<tcp::resolver>(*lc_->loop);
    resolver_->async_resolve(
        cfg.host, std::to_string(cfg.port),
        [this, self = self_ptr(), cfg](error_code ec,
                                       tcp::resolver::results_type res) {
          if (state_ != state::connecting)
            return;
          if (ec) {
            finish(make_error(errc::resolve_failed,
                              cfg.host + ": " + ec.message()));
            return;
          }
          if (!cfg.local_host.empty()) {
            auto addr = asio::ip::make_address(cfg.local_host, ec);
            if (ec) {
              finish(make_error(errc::invalid_config,
                                "client.local_host: '" + cfg.local_host +
                                    "' is not an IP address"));
              return;
            }
            local_ = tcp::endpoint{addr, cfg.local_port};
            bind_local_ = true;
          }
          try_connect(res, res.begin());
        });
  });
}

void socket_manager::try_connect(tcp::resolver::results_type endpoints,
                                 tcp::resolver::results_type::iterator pos) {
  if (pos == endpoints.end()) {
    finish(close_reason_ ? close_reason_
                         : make_error(errc::connect_failed, peer()));
    return;
  }
  auto ep = pos->endpoint();
  error_code ec;
  socket_.emplace(*lc_->loop);
  socket_->open(ep.protocol(), ec);
  if (!ec)
    apply_buffer_options(socket_->native_handle(), *cfg_);
  if (!ec && bind_local_) {
    socket_->set_option(tcp::acceptor::reuse_address{true}, ec);
    socket_->bind(local_, ec);
    if (ec) {
      finish(make_error(errc::connect_failed, "bind to local " +
                                                  to_string(local_) + ": " +
                                                  ec.message()));
      return;
    }
  }
  if (ec) {
    close_reason_ = to_error(ec, errc::connect_failed, to_string(ep));
    try_connect(std::move(endpoints), std::next(pos));
    return;
  }
  socket_->async_connect(
      ep, [this, self = self_ptr(), endpoints, pos, ep](error_code ec) {
        if (state_ != state::connecting)
          return;
        if (ec) {
          // Keep the last cause; try the next address of the host.
          close_reason_ = to_error(ec, errc::connect_failed, to_string(ep));
          try_connect(endpoints, std::next(pos));
          return;
        }
        on_connected();
      });
}

void socket_manager::connect_unix(
    const std::string& path, std::chrono::steady_clock::time_point deadline,
    std::chrono::milliseconds limit) {
  unix_address addr{path};
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    finish(errno_to_error(errno, errc::connect_failed, path));
    return;
  }
  apply_buffer_options(fd, *cfg_);
  int rc;
  do
    rc = ::connect(fd, addr.data(), addr.len);
  while (rc != 0 && errno == EINTR);
  if (rc == 0) {
    // A Unix connect completes at once or fails; no wait for writability.
    error_code ec;
    socket_.emplace(*lc_->loop);
    socket_->assign(tcp::v4(), fd, ec);
    if (ec) {
      ::close(fd);
      finish(to_error(ec, errc::connect_failed, path));
      return;
    }
    on_connected();
    return;
  }
  auto err = errno;
  ::close(fd);
  if (err != EAGAIN) {
    finish(errno_to_error(err, errc::connect_failed, path));
    return;
  }
  // The listener's backlog is full. Linux cannot report when it has room
  // (writability would be a lie), so ask again shortly, within the bound.
  auto now = std::chrono::steady_clock::now();
  if (now >= deadline) {
    finish(make_error(errc::connect_timeout,
                      path + " after " + std::to_string(limit.count()) +
                          "ms (its backlog stayed full)"));
    return;
  }
  timer_->expires_after(std::min<std::chrono::steady_clock::duration>(
      unix_retry, deadline - now));
  timer_->async_wait(
      [this, self = self_ptr(), path, deadline, limit](error_code ec) {
        if (ec || state_ != state::connecting)
          return;
        connect_unix(path, deadline, limit);
      });
}

void socket_manager::on_connected() {
  close_reason_ = caf::error{};
  timer_.reset();
  resolver_.reset();
  prepare_socket(true);
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stream_.connected_ = true;
  }
  if (tls_) {
    // `connected` waits for the handshake; early writes wait in the layer.
    tls_->begin_handshake(nullptr);
    return;
  }
  on_ready();
}

void socket_manager::on_ready() {
  bool flush = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!stream_.wq_.empty() && !stream_.write_armed_) {
      stream_.write_armed_ = true;
      flush = true;
    }
  }
  send_to_target(caf::make_message_id(),
                 caf::make_message(connected_atom::value));
  begin_reading();
  if (flush && state_ == state::open)
    stream_.on_writable();
}

// -- deadlines ----------------------------------------------------------------

void socket_manager::watch_deadlines() {
  auto& c = *cfg_;
  std::chrono::milliseconds shortest{0};
  for (auto x : {c.first_byte_timeout, c.idle_timeout, c.write_stall_timeout,
                 c.max_lifetime})
    if (x.count() > 0 && (shortest.count() == 0 || x < shortest))
      shortest = x;
  if (shortest.count() == 0)
    return;
  lc_->sweep->watch(this, shortest);
  // Stamps taken before the sweep ran may be stale.
  opened_at_ = stream_.last_read_ = stream_.write_wait_since_ = timeouts::now();
}

caf::error socket_manager::expired(timeouts::clock::time_point now) {
  auto& c = *cfg_;
  auto& st = stream_;
  // A stamp may lag the event by one period; adding it means a timeout
  // never fires early, and at most two periods late.
  auto lag = lc_->sweep->period();
  auto over = [now, lag](timeouts::clock::time_point since,
                         std::chrono::milliseconds limit) {
    return limit.count() > 0 && now - since >= limit + lag;
  };
  auto err = [this](errc code, std::chrono::milliseconds limit,
                    const char* what) {
    return make_error(code, peer() + ": " + what + " for " +
                                std::to_string(limit.count()) + "ms");
  };
  if (st.write_waiting_ && over(st.write_wait_since_, c.write_stall_timeout))
    return err(errc::write_stall_timeout, c.write_stall_timeout,
               "queued bytes made no progress");
  if (state_ == state::open && over(opened_at_, c.max_lifetime))
    return err(errc::lifetime_exceeded, c.max_lifetime, "connection open");
  if (state_ != state::open || !st.reading_)
    return {};
  if (!st.any_read_ && over(opened_at_, c.first_byte_timeout))
    return err(errc::first_byte_timeout, c.first_byte_timeout, "no first byte");
  // Before the first byte, idle counts from the open (last_read_ starts
  // there): "nothing arrived for this long" holds either way.
  if (over(st.last_read_, c.idle_timeout)) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (st.read_paused_) {
      // Our actor is behind, not the peer: waiting does not count.
      st.last_read_ = now;
      return {};
    }
    return err(errc::idle_timeout, c.idle_timeout, "no byte received");
  }
  return {};
}

bool socket_manager::deadline_passed(timeouts::clock::time_point now) {
  return static_cast<bool>(expired(now));
}

void socket_manager::on_deadline(timeouts::clock::time_point now) {
  auto err = expired(now);
  if (!err)
    return;
  if (kind(err) == errc::write_stall_timeout) {
    finish(std::move(err)); // the queue cannot drain: drop it
    return;
  }
  // The peer still gets the replies queued so far.
  begin_close(std::move(err));
}

// -- close --------------------------------------------------------------------

void socket_manager::begin_close(caf::error reason) {
  if (state_ == state::closing || state_ == state::closed)
    return;
  if (state_ == state::connecting || state_ == state::handshaking) {
    // Never opened for anyone (a runtime shutdown during a PROXY header or
    // TLS handshake): nothing of the user's to flush.
    finish(std::move(reason));
    return;
  }
  enter(state::closing);
  close_reason_ = std::move(reason);
  stream_.reading_ = false;
  bool drained;
  std::size_t queued;
  bool arm = false;
  int err = 0;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    writable_ = false;
    if (tls_) {
      // close_notify tells the peer the data ended here, not cut short.
      tls_->end_locked();
      err = stream_.push_locked(arm);
    }
    drained = stream_.queue_empty_locked();
    queued = stream_.queued_locked();
  }
  if (err != 0) {
    finish(close_reason_ ? close_reason_
                         : errno_to_error(err, errc::write_failed, peer()));
    return;
  }
  if (arm)
    stream_.arm_write();
  if (drained) {
    finish(close_reason_);
    return;
  }
  // The writer calls finish() once the queue drains; this bounds the wait.
  timer_ = std::make_unique<asio::steady_timer>(*lc_->loop);
  timer_->expires_after(cfg_->close_timeout);
  timer_->async_wait([this, self = self_ptr(), queued](error_code ec) {
    if (ec || state_ != state::closing)
      return;
    finish(make_error(errc::write_timeout,
                      peer() + ": " + std::to_string(queued) +
                          " queued bytes not read within close_timeout"));
  });
}

void socket_manager::finish(caf::error reason, bool notify_target) {
  if (state_ == state::closed)
    return;
  enter(state::closed);
  stream_.reading_ = false;
  ring<ack> acks;
  caf::strong_actor_ptr target;
  bool quit_after;
  bool handshake_failed = false;
  {
    // After this block no actor thread touches the descriptor, so closing it
    // below cannot race a direct send.
    std::lock_guard<std::mutex> guard{mtx_};
    finished_ = true;
    close_reason_ = reason; // for monitors that come later
    target.swap(target_);
    quit_after = quit_after_;
    writable_ = false;
    stream_.clear_locked();
    if (rare_)
      std::swap(acks, rare_->acks);
    bridge_.clear_locked();
    fd_ = -1;
    handshake_failed = tls_ && !tls_->ready_locked();
    if (tls_)
      tls_->release_locked([&](caf::strong_actor_ptr to, caf::message_id mid) {
        acks.push_back(ack{0, std::move(to), mid});
      });
  }
  error_code ec;
  if (socket_) {
    socket_->close(ec);
    socket_.reset();
  }
  resolver_.reset();
  timer_.reset();
  lc_->sweep->unwatch(this);
  if (owner_ != 0) {
    // Accepted connections only: a client's end is its owner's business.
    auto& m = metrics();
    if (handshake_failed)
      metrics_registry::add(m.local().handshake_failures, 1);
    auto lifetime = opened_at_ != timeouts::clock::time_point{}
                        ? timeouts::clock::now() - opened_at_
                        : timeouts::clock::duration::zero();
    m.closed(reason,
             handshake_failed ? timeouts::clock::duration::zero() : lifetime);
  }
  // The listener's callback holds this socket manager: drop it, or a failed
  // handshake keeps it alive forever.
  if (tls_)
    tls_->forget_callback();
  // Includes TLS writes that waited for a handshake that never finished.
  for (; !acks.empty(); acks.pop_front())
    respond(acks.front().to, acks.front().mid,
            caf::make_message(make_error(
                errc::closed, peer() + ": closed before the write completed")));
  auto tell = [&](caf::message content) {
    if (target)
      target->enqueue(caf::make_mailbox_element(self_ptr(),
                                                caf::make_message_id(), {},
                                                std::move(content)),
                      unit());
  };
  if (notify_target) {
    if (reason)
      tell(caf::make_message(error_atom::value, reason));
    tell(caf::make_message(closed_atom::value));
  }
  if (quit_after)
    tell(caf::make_message(quit_atom::value));
  // Before the observer hears of it: a listener that counts this one as
  // gone must not find it among its live connections (owned_by skips it).
  setf(is_terminated_flag | is_cleaned_up_flag);
  // finish() runs once, so the observer hears of this connection once.
  if (owner_ != 0)
    if (auto observer = lc_->rt->observer(owner_))
      observer->on_finished(*this, reason);
  caf::attachable_ptr attached;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (rare_)
      attached.swap(rare_->attached);
  }
  auto exit_reason =
      reason ? caf::error{reason} : caf::error{caf::exit_reason::normal};
  for (auto i = attached.get(); i != nullptr; i = i->next.get())
    i->actor_exited(exit_reason, nullptr);
  // Last: this may drop the registry's reference (the caller holds another).
  lc_->rt->remove(this);
}

} // namespace tcpactor
