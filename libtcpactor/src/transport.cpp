// Lifecycle of one socket: setup, connect, commands, close. The read path is
// in transport_read.cpp, the write path in transport_write.cpp.

#include "transport.hpp"

#include <atomic>

#include <sys/socket.h>

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/make_actor.hpp>
#include <caf/sec.hpp>

#include "tcpactor/errors.hpp"
#include "tcpactor/log.hpp"

namespace tcpactor {

namespace {

std::atomic<connection_id> next_conn_id{0};

} // namespace

transport::transport(caf::actor_config& cfg, runtime::impl& rt,
                     asio::io_context& loop,
                     std::shared_ptr<const connection_config> conn_cfg)
    : caf::abstract_actor(cfg), lc_(&rt.pool.context_of(loop)),
      cfg_(std::move(conn_cfg)), conn_id_(++next_conn_id) {
  // nop
}

transport::~transport() {
  // finish() ran on the loop and released every Asio object.
}

caf::strong_actor_ptr
transport::make(runtime::impl& rt, asio::io_context& loop,
                std::shared_ptr<const connection_config> conn_cfg,
                uint64_t owner, std::optional<loop_socket> sock,
                const tcp::endpoint& remote) {
  caf::actor_config cfg;
  auto ptr = caf::make_actor<transport, caf::strong_actor_ptr>(
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

void transport::enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) {
  auto mid = what->mid;
  auto& xs = what->content();
  if (mid.is_response()) {
    // The target answered one delivered chunk.
    auto rid = mid.request_id().integer_value();
    if (xs.match_elements<bytes>()) {
      write(xs.get_as<bytes>(0));
    } else if (xs.match_elements<caf::error>()) {
      // The handler failed, or its actor is gone (CAF bounces requests).
      auto& err = xs.get_as<caf::error>(0);
      abort(make_error(errc::handler_failed, peer() + ": " + describe(err)));
    }
    request_done(rid);
    return;
  }
  if (xs.match_elements<write_atom, bytes>()) {
    auto& data = xs.get_as<bytes>(1);
    if (mid.is_request()) {
      if (!write(data, what->sender, mid))
        respond(what->sender, mid,
                caf::make_message(make_error(errc::closed, peer())));
    } else {
      write(data);
    }
    return;
  }
  if (xs.match_elements<close_atom>()) {
    close();
    if (mid.is_request())
      respond(what->sender, mid, caf::message{});
    return;
  }
  if (xs.match_elements<shutdown_write_atom>()) {
    shutdown_write();
    if (mid.is_request())
      respond(what->sender, mid, caf::message{});
    return;
  }
  if (mid.is_request())
    respond(what->sender, mid,
            caf::make_message(caf::make_error(caf::sec::unexpected_message)));
}

void transport::attach(caf::attachable_ptr ptr) {
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

void transport::set_on_drain(std::function<void()> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  rare_locked().on_drain = std::move(fn);
}

void transport::clear_on_drain() {
  // Moved out under the lock, destroyed outside it: the hook may hold the
  // last caller, i.e. a reference to this transport.
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (rare_)
      fn.swap(rare_->on_drain);
  }
}

void transport::run_on_drain() {
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

std::size_t transport::detach(const caf::attachable::token& what) {
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

void transport::respond(const caf::strong_actor_ptr& to, caf::message_id mid,
                        caf::message msg) {
  if (!to)
    return;
  to->enqueue(caf::make_mailbox_element(self_ptr(), mid.response_id(), {},
                                        std::move(msg)),
              nullptr);
}

void transport::send_to_target(caf::message_id mid, caf::message msg) {
  if (target_)
    target_->enqueue(
        caf::make_mailbox_element(self_ptr(), mid, {}, std::move(msg)), unit());
}

// -- setup --------------------------------------------------------------------

void transport::adopt(loop_socket sock, const tcp::endpoint& remote) {
  socket_.emplace(std::move(sock));
  // The listener's view of the peer (unspecified if the peer had reset
  // already), which its per-address count used: asking again could name
  // another address when the slot is released.
  remote_ = remote;
  prepare_socket(false);
  std::lock_guard<std::mutex> guard{mtx_};
  connected_ = true;
}

void transport::prepare_socket(bool ask_remote) {
  // Errors here only cost speed (Nagle) or are caught by the next syscall.
  error_code ec;
  socket_->non_blocking(true, ec);
  if (cfg_->tcp_nodelay)
    socket_->set_option(tcp::no_delay{true}, ec);
  fill_endpoints(ask_remote);
  state_ = state::open;
}

void transport::fill_endpoints(bool ask_remote) {
  error_code ec;
  fd_ = socket_->native_handle();
  if (ask_remote) {
    auto remote = socket_->remote_endpoint(ec);
    if (!ec)
      remote_ = remote;
  }
  auto local = socket_->local_endpoint(ec);
  if (!ec)
    local_ = local;
}

std::string transport::remote_host() const {
  return remote_.port() != 0 ? remote_.address().to_string() : std::string{};
}

std::string transport::local_host() const {
  return local_.port() != 0 ? local_.address().to_string() : std::string{};
}

std::string transport::peer() const {
  if (remote_.port() != 0)
    return to_string(remote_);
  return target_name_ ? *target_name_ : std::string{};
}

void transport::set_target(caf::strong_actor_ptr target, bool quit_after) {
  target_ = std::move(target);
  quit_after_ = quit_after;
}

// -- commands -----------------------------------------------------------------

void transport::start(caf::strong_actor_ptr target) {
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
    if (state_ != state::open || reading_)
      return;
    reading_ = true;
    watch_deadlines();
    read_some();
  });
}

void transport::close() {
  post([this] { begin_close(caf::error{}); });
}

void transport::shutdown_write() {
  {
    // Refuse later writes from now on, not from when the loop gets to it.
    std::lock_guard<std::mutex> guard{mtx_};
    writable_ = false;
  }
  post([this] {
    if (state_ != state::open || shut_wr_requested_)
      return;
    shut_wr_requested_ = true;
    bool arm = false;
    int err = 0;
    bool drained;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      writable_ = false;
      tls_shutdown_locked();
      err = push_locked(arm);
      drained = wq_.empty();
    }
    if (err != 0) {
      finish(errno_to_error(err, errc::write_failed, peer()));
      return;
    }
    if (arm)
      arm_write();
    if (drained)
      shut_write_side();
  });
}

void transport::shut_write_side() {
  write_shut_ = true;
  ::shutdown(fd_, SHUT_WR);
  // Both sides ended: nothing more can happen on this connection.
  if (peer_eof_)
    begin_close(caf::error{});
}

void transport::notify_drain() {
  if (draining_.exchange(true))
    return;
  post([this] {
    if (state_ == state::open || state_ == state::closing)
      send_to_target(caf::make_message_id(),
                     caf::make_message(drain_atom::value));
  });
}

void transport::abort(caf::error reason) {
  post([this, reason{std::move(reason)}]() mutable {
    finish(std::move(reason));
  });
}

void transport::reject(caf::error reason) {
  post([this, reason{std::move(reason)}]() mutable {
    finish(std::move(reason), false);
  });
}

void transport::target_down(const caf::error& reason) {
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

// -- connect ------------------------------------------------------------------

void transport::connect(const client_config& cfg) {
  post([this, cfg] {
    if (state_ != state::connecting)
      return;
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

void transport::try_connect(tcp::resolver::results_type endpoints,
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

void transport::on_connected() {
  close_reason_ = caf::error{};
  timer_.reset();
  resolver_.reset();
  prepare_socket(true);
  {
    std::lock_guard<std::mutex> guard{mtx_};
    connected_ = true;
  }
  if (tls_) {
    // `connected` waits for the handshake; early writes wait in tls_.
    begin_handshake();
    return;
  }
  on_ready();
}

void transport::on_ready() {
  bool flush = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!wq_.empty() && !write_armed_) {
      write_armed_ = true;
      flush = true;
    }
  }
  send_to_target(caf::make_message_id(),
                 caf::make_message(connected_atom::value));
  reading_ = true;
  watch_deadlines();
  read_some();
  if (flush && state_ == state::open)
    on_writable();
}

// -- deadlines ----------------------------------------------------------------

void transport::watch_deadlines() {
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
  opened_at_ = last_read_ = write_wait_since_ = timeouts::now();
}

caf::error transport::expired(timeouts::clock::time_point now) {
  auto& c = *cfg_;
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
  if (write_waiting_ && over(write_wait_since_, c.write_stall_timeout))
    return err(errc::write_stall_timeout, c.write_stall_timeout,
               "queued bytes made no progress");
  if (state_ == state::open && over(opened_at_, c.max_lifetime))
    return err(errc::lifetime_exceeded, c.max_lifetime, "connection open");
  if (state_ != state::open || !reading_)
    return {};
  if (!any_read_ && over(opened_at_, c.first_byte_timeout))
    return err(errc::first_byte_timeout, c.first_byte_timeout, "no first byte");
  // Before the first byte, idle counts from the open (last_read_ starts
  // there): "nothing arrived for this long" holds either way.
  if (over(last_read_, c.idle_timeout)) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (read_paused_) {
      // Our actor is behind, not the peer: waiting does not count.
      last_read_ = now;
      return {};
    }
    return err(errc::idle_timeout, c.idle_timeout, "no byte received");
  }
  return {};
}

bool transport::deadline_passed(timeouts::clock::time_point now) {
  return static_cast<bool>(expired(now));
}

void transport::on_deadline(timeouts::clock::time_point now) {
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

void transport::begin_close(caf::error reason) {
  if (state_ == state::closing || state_ == state::closed)
    return;
  if (state_ == state::connecting) {
    finish(std::move(reason));
    return;
  }
  state_ = state::closing;
  close_reason_ = std::move(reason);
  reading_ = false;
  bool drained;
  std::size_t queued;
  bool arm = false;
  int err = 0;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    writable_ = false;
    if (tls_) {
      // close_notify tells the peer the data ended here, not cut short.
      tls_shutdown_locked();
      err = push_locked(arm);
    }
    drained = wq_.empty();
    queued = wq_bytes_;
  }
  if (err != 0) {
    finish(close_reason_ ? close_reason_
                         : errno_to_error(err, errc::write_failed, peer()));
    return;
  }
  if (arm)
    arm_write();
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

void transport::finish(caf::error reason, bool notify_target) {
  if (state_ == state::closed)
    return;
  state_ = state::closed;
  reading_ = false;
  ring<ack> acks;
  caf::strong_actor_ptr target;
  bool quit_after;
  {
    // After this block no actor thread touches the descriptor, so closing it
    // below cannot race a direct send.
    std::lock_guard<std::mutex> guard{mtx_};
    finished_ = true;
    close_reason_ = reason; // for monitors that come later
    target.swap(target_);
    quit_after = quit_after_;
    writable_ = false;
    connected_ = false;
    wq_.clear();
    wq_bytes_ = 0;
    if (rare_)
      std::swap(acks, rare_->acks);
    pending_.clear();
    pending_bytes_ = 0;
    eof_pending_ = false;
    fd_ = -1;
    tls_release_locked(acks);
  }
  error_code ec;
  if (socket_) {
    socket_->close(ec);
    socket_.reset();
  }
  resolver_.reset();
  timer_.reset();
  lc_->sweep->unwatch(this);
  // The listener's callback holds this transport: drop it, or a failed
  // handshake keeps the transport alive forever.
  if (tls_)
    tls_->on_handshake = nullptr;
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
                      nullptr);
  };
  if (notify_target) {
    if (reason)
      tell(caf::make_message(error_atom::value, reason));
    tell(caf::make_message(closed_atom::value));
  }
  if (quit_after)
    tell(caf::make_message(quit_atom::value));
  // Before the observer hears of it: a listener that counts this one as
  // gone must not find it among its live transports (owned_by skips it).
  setf(is_terminated_flag | is_cleaned_up_flag);
  // finish() runs once, so the observer hears of this transport once.
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
