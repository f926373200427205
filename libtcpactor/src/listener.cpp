// Accepting and supervising: the listener actor and its accept loop.

#include "tcpactor/listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <boost/asio/ip/v6_only.hpp>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include "connection_impl.hpp"
#include "runtime_impl.hpp"
#include "socket_manager.hpp"
#include "socket_options.hpp"
#include "tcpactor/errors.hpp"
#include "tcpactor/log.hpp"
#include "tcpactor/metrics.hpp"
#include "tls_context.hpp"
#include "unix_socket.hpp"

namespace tcpactor {

namespace {

using stopped_atom = caf::atom_constant<caf::atom("tcpa_lstop")>;
using drained_atom = caf::atom_constant<caf::atom("tcpa_ldrnd")>;

// Pause before accepting again after an error such as EMFILE, so a full fd
// table cannot turn the accept loop into a busy loop.
constexpr auto accept_backoff = std::chrono::milliseconds{100};

// The level of a connection's lines. Every connection's opened and closed
// at info cost the server 7-8 us of CPU per connection in connect churn
// (+17%, bench/cpu_cost.sh) and a log line per event at any rate; the
// metrics count them instead. What needs an operator (a failed handshake,
// with OpenSSL's reason; a bad PROXY header; a failed handler) stays at
// info.
log::level connection_log_level(connection_event::kind_t kind) {
  switch (kind) {
    case connection_event::handshake_failed:
    case connection_event::proxy_failed:
    case connection_event::failed:
      return log::level::info;
    default:
      return log::level::debug;
  }
}

// `event` names the line for structured formats (log.hpp).
void say(log::level lvl, std::string_view event, const std::string& msg) {
  if (log::enabled(lvl))
    log::write(lvl, event, msg);
}

void info(std::string_view event, const std::string& msg) {
  say(log::level::info, event, msg);
}

void warn(std::string_view event, const std::string& msg) {
  say(log::level::warning, event, msg);
}

// -- connection limits and fd exhaustion -------------------------------------

/// One kind of refusal, for the log: a line when a burst starts and a sum
/// when it ends, never a line per connection. A burst ends at the first
/// success at least `min_length` after it began, so a peer that alternates
/// with admitted ones still costs at most two lines a second.
class refusal_burst {
public:
  static constexpr auto min_length = std::chrono::seconds{1};

  /// Counts `n` refusals; true if they start a burst (log it).
  bool add(uint64_t n) {
    count_ += n;
    if (active_)
      return false;
    active_ = true;
    started_ = std::chrono::steady_clock::now();
    return true;
  }

  /// A success: the size of the burst it ends, if it ends one.
  std::optional<uint64_t> end() {
    if (!active_ || std::chrono::steady_clock::now() - started_ < min_length)
      return std::nullopt;
    active_ = false;
    return std::exchange(count_, 0);
  }

private:
  bool active_ = false;
  uint64_t count_ = 0;
  std::chrono::steady_clock::time_point started_;
};

/// Closes with a reset (SO_LINGER 0): the peer learns at once, and no
/// TIME_WAIT is left behind for a connection we never served.
void reset_close(int fd) {
  ::linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  ::close(fd);
}

/// The descriptor given up on EMFILE to make room for one accept.
int open_reserve() {
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

bool out_of_descriptors(const error_code& ec) {
  return ec == asio::error::no_descriptors ||
         ec == boost::system::errc::too_many_files_open_in_system;
}

} // namespace

std::string to_string(connection_event::kind_t x) {
  switch (x) {
    case connection_event::opened:
      return "opened";
    case connection_event::rejected:
      return "rejected";
    case connection_event::failed:
      return "failed";
    case connection_event::closed:
      return "closed";
    case connection_event::handshake_failed:
      return "handshake_failed";
    case connection_event::limited:
      return "limited";
    case connection_event::proxy_failed:
      return "proxy_failed";
  }
  return "unknown";
}

/// State shared by the listener actor, its accept loop and its connections'
/// finish hooks.
class listener_core : public std::enable_shared_from_this<listener_core>,
                      public finish_observer {
public:
  listener_core(runtime::impl& rt, listener_config cfg,
                connect_handler on_connect, caf::actor observer,
                std::shared_ptr<tls_context_holder> tls)
      : rt_(&rt), loop_(&rt.pool.next()), tls_(std::move(tls)),
        cfg_(std::move(cfg)),
        conn_cfg_(std::make_shared<const connection_config>(cfg_.connection)),
        on_connect_(
            std::make_shared<const connect_handler>(std::move(on_connect))),
        observer_(std::move(observer)), reserve_fd_(open_reserve()) {
    // nop
  }

  ~listener_core() override {
    if (reserve_fd_ >= 0)
      ::close(reserve_fd_);
    // Null once the runtime went away (detach), and its map with it.
    if (rt_)
      rt_->forget(tag);
  }

  /// An acceptor on `loop`, bound to `ep` and listening.
  std::shared_ptr<tcp::acceptor> bind_acceptor(asio::io_context& loop,
                                               const tcp::endpoint& ep,
                                               error_code& ec) {
    auto acc = std::make_shared<tcp::acceptor>(loop);
    acc->open(ep.protocol(), ec);
    if (!ec)
      acc->set_option(tcp::acceptor::reuse_address{true}, ec);
    if (!ec && cfg_.reuse_port) {
      int on = 1;
      if (::setsockopt(acc->native_handle(), SOL_SOCKET, SO_REUSEPORT, &on,
                       sizeof(on)) != 0)
        ec = error_code{errno, boost::system::system_category()};
    }
    if (!ec && ep.address().is_v6())
      acc->set_option(asio::ip::v6_only(cfg_.ipv6_only), ec);
    if (!ec)
      apply_buffer_options(acc->native_handle(), cfg_.connection);
    if (!ec)
      acc->bind(ep, ec);
    if (!ec)
      acc->listen(cfg_.backlog, ec);
    return acc;
  }

  /// Binds and starts accepting; returns the bound port.
  caf::expected<uint16_t> open(caf::actor self) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!rt_ || rt_->stopping())
      return make_error(errc::shutdown, "runtime is shutting down");
    if (acceptor_)
      return port_;
    if (!cfg_.unix_path.empty())
      return open_unix(std::move(self));
    error_code ec;
    auto where = cfg_.host + ":" + std::to_string(cfg_.port);
    auto addr = asio::ip::make_address(cfg_.host, ec);
    if (ec) {
      // A host name: resolve it here, once, at start.
      asio::io_context tmp;
      tcp::resolver res{tmp};
      auto eps = res.resolve(cfg_.host, std::to_string(cfg_.port),
                             tcp::resolver::passive, ec);
      if (ec || eps.empty())
        return make_error(errc::bind_failed,
                          "listener.host '" + cfg_.host +
                              "': " + (ec ? ec.message() : "no address"));
      addr = eps.begin()->endpoint().address();
    }
    tcp::endpoint ep{addr, cfg_.port};
    auto acc = bind_acceptor(*loop_, ep, ec);
    if (ec)
      return make_error(errc::bind_failed, where + ": " + ec.message());
    port_ = acc->local_endpoint(ec).port();
    // A restart binds the same port, even if the first bind picked it.
    cfg_.port = port_;
    std::vector<std::pair<std::shared_ptr<tcp::acceptor>, asio::io_context*>>
        extras;
    if (cfg_.reuse_port) {
      // One more acceptor per other loop on the same port: the kernel
      // spreads new connections over them, and each loop accepts its own,
      // with no hop from an accepting loop to the one that serves.
      for (std::size_t i = 0; i < rt_->pool.size(); ++i) {
        auto* loop = &rt_->pool.at(i);
        if (loop == loop_)
          continue;
        auto extra = bind_acceptor(*loop, tcp::endpoint{addr, port_}, ec);
        if (ec) {
          error_code ignored;
          acc->close(ignored);
          for (auto& x : extras)
            x.first->close(ignored);
          return make_error(errc::bind_failed,
                            where + " (reuse_port): " + ec.message());
        }
        extras.emplace_back(std::move(extra), loop);
      }
    }
    acceptor_ = acc;
    extra_acceptors_ = extras;
    self_ = std::move(self);
    auto* own = cfg_.reuse_port ? loop_ : nullptr;
    asio::post(*loop_, [core = shared_from_this(), acc, own] {
      core->accept(acc, own);
    });
    for (auto& [extra, loop] : extras)
      asio::post(*loop, [core = shared_from_this(), a = extra, l = loop] {
        core->accept(a, l);
      });
    info("listening",
         "listening on " + to_string(tcp::endpoint{addr, port_}) +
             (cfg_.reuse_port
                  ? " (" + std::to_string(extras.size() + 1) + " acceptors)"
                  : ""));
    return port_;
  }

  /// Stops accepting (and with `immediate`, closes every connection); `done`
  /// runs once the port is free again and, with `immediate`, every
  /// connection has finished, so that the stop's reply means it is over.
  void stop(bool immediate, std::function<void()> done) {
    std::shared_ptr<tcp::acceptor> acc;
    std::vector<std::pair<std::shared_ptr<tcp::acceptor>, asio::io_context*>>
        extras;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      acc = std::move(acceptor_);
      extras.swap(extra_acceptors_);
      self_ = nullptr;
      if (!rt_) {
        if (done)
          done();
        return;
      }
    }
    if (!extras.empty()) {
      // Each acceptor closes on its own loop; the last one to close goes on
      // below, so no loop can admit a connection behind the sweep.
      auto left = std::make_shared<std::atomic<std::size_t>>(extras.size());
      auto rest = [core = shared_from_this(), acc, immediate,
                   done{std::move(done)}]() mutable {
        core->stop(std::move(acc), immediate, std::move(done));
      };
      auto shared_rest = std::make_shared<decltype(rest)>(std::move(rest));
      for (auto& [extra, loop] : extras)
        asio::post(*loop, [a = extra, left, shared_rest, l = loop_] {
          error_code ec;
          a->close(ec);
          if (--*left == 0)
            asio::post(*l, [shared_rest] { (*shared_rest)(); });
        });
      return;
    }
    stop(std::move(acc), immediate, std::move(done));
  }

  /// The rest of stop(), once the extra acceptors are closed.
  void stop(std::shared_ptr<tcp::acceptor> acc, bool immediate,
            std::function<void()> done) {
    // On the loop, after the acceptor closed: an accept that completed
    // before cannot admit a connection behind the sweep.
    asio::post(*loop_, [core = shared_from_this(), acc, immediate,
                        done{std::move(done)}]() mutable {
      if (acc) {
        error_code ec;
        acc->close(ec);
        core->remove_socket_file();
      }
      if (!immediate) {
        if (done)
          done();
        return;
      }
      core->close_all(make_error(errc::shutdown, "listener stopped"));
      if (done)
        core->when_all_closed(std::move(done));
    });
  }

  /// Aborts every open connection of this listener; returns how many.
  std::size_t close_all(const caf::error& why) {
    std::vector<caf::strong_actor_ptr> open;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      // Under mtx_: detach() cannot null rt_ (and let the runtime go)
      // meanwhile. The order listener -> runtime lock is the only one.
      if (rt_)
        open = rt_->owned_by(tag);
    }
    for (auto& ptr : open)
      socket_manager::from(ptr)->abort(why);
    return open.size();
  }

  /// Runs `done` once no connection of this listener is open.
  void when_all_closed(std::function<void()> done) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (open_ != 0) {
        all_closed_.push_back(std::move(done));
        return;
      }
    }
    done();
  }

  /// Stops accepting, tells every connection, and calls `done` with the
  /// number it force-closed once all closed or `deadline` passed.
  void drain(caf::timespan deadline, std::function<void(uint64_t)> done) {
    stop(false, {});
    std::vector<caf::strong_actor_ptr> open;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (drain_done_) {
        done(0); // one drain at a time; a second one adds nothing
        return;
      }
      drain_done_ = std::move(done);
      if (rt_)
        open = rt_->owned_by(tag);
    }
    for (auto& ptr : open)
      socket_manager::from(ptr)->notify_drain();
    auto timer = std::make_shared<asio::steady_timer>(*loop_);
    timer->expires_after(deadline);
    asio::post(*loop_, [core = shared_from_this(), timer] {
      core->drain_timer_ = timer;
      timer->async_wait([core](error_code ec) {
        if (!ec)
          core->finish_drain(true);
      });
      core->finish_drain(false);
    });
  }

  /// open() failed, so no hook will ever call detach(): let go of the
  /// runtime now, which may go away before this core does.
  void abandon() {
    runtime::impl* rt;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      rt = std::exchange(rt_, nullptr);
    }
    if (rt)
      rt->forget(tag);
  }

  /// The runtime is going away: stop accepting now (the runtime closes the
  /// connections, gracefully) and never touch the runtime again.
  void detach() {
    std::promise<void> closed;
    stop(false, [&closed] { closed.set_value(); });
    closed.get_future().wait();
    std::lock_guard<std::mutex> guard{mtx_};
    rt_ = nullptr;
  }

  listener_stats stats() const {
    listener_stats x;
    std::lock_guard<std::mutex> guard{mtx_};
    x.port = port_;
    x.accepting = acceptor_ != nullptr;
    x.open = open_;
    x.accepted = accepted_;
    x.rejected = rejected_;
    x.failed = failed_;
    x.handshake_failed = handshake_failed_;
    x.over_limit = over_limit_;
    x.no_descriptors = no_descriptors_;
    x.proxy_failed = proxy_failed_;
    return x;
  }

  /// Loads the TLS files again for new handshakes; keeps the old ones if
  /// that fails.
  caf::error reload_tls() {
    if (!tls_)
      return make_error(errc::invalid_config,
                        "listener.tls: TLS is not enabled on this listener");
    auto err = tls_->reload();
    if (err)
      log::write(log::level::warning,
                 "TLS reload failed, keeping the old certificates: " +
                     describe(err));
    else
      info("tls_reloaded", "TLS certificates reloaded");
    return err;
  }

  void emit(connection_event::kind_t kind, connection_id id,
            const std::string& peer, const caf::error& reason) {
    auto lvl = connection_log_level(kind);
    if (log::enabled(lvl)) {
      auto what = to_string(kind);
      auto line =
          "connection " + std::to_string(id) + " " + what + " peer=" + peer;
      std::string why;
      if (reason) {
        line += " reason=" + describe(reason);
        why = is_tcpactor_error(reason) ? to_string(tcpactor::kind(reason))
                                        : std::string{"other"};
      }
      auto event = "connection_" + what;
      log::record r;
      r.severity = lvl;
      r.event = event;
      r.message = line;
      r.conn_id = id;
      r.peer = peer;
      r.reason = why;
      log::write(r);
    }
    if (observer_)
      caf::anon_send(observer_, connection_event{kind, id, peer, reason});
  }

  uint64_t hook_token = 0;

private:
  /// Accepts on `acc`'s loop; each connection goes to the next loop of the
  /// pool, or with `own` (reuse_port) stays on that one.
  void accept(std::shared_ptr<tcp::acceptor> acc, asio::io_context* own) {
    auto& target = own != nullptr ? *own : rt_->pool.next();
    acc->async_accept(target, [core = shared_from_this(), acc, own,
                               &target](error_code ec, loop_socket sock) {
      if (!acc->is_open())
        return;
      if (ec == asio::error::operation_aborted)
        return;
      if (ec && out_of_descriptors(ec)) {
        core->shed_backlog(*acc, ec);
      } else if (ec) {
        warn("accept_failed", "accept on " + core->where() + " failed: " +
                                  ec.message() + "; retrying in 100ms");
      }
      if (ec) {
        auto timer = std::make_shared<asio::steady_timer>(
            own != nullptr ? *own : *core->loop_);
        timer->expires_after(accept_backoff);
        timer->async_wait([core, acc, own, timer](error_code) {
          if (acc->is_open())
            core->accept(acc, own);
        });
        return;
      }
      core->descriptors_available();
      core->on_accepted(std::move(sock), target);
      core->accept(acc, own);
    });
  }

  // Out of descriptors, the kernel keeps the connection in the backlog, the
  // acceptor stays readable and every retry fails the same way (even with an
  // empty backlog: accept() claims a descriptor first), while the peer waits
  // for nothing. Give up the reserve, accept and reset what waits (libuv's
  // uv__emfile_trick), then take the reserve back; the caller's backoff
  // keeps the retries to ten a second. Loop only.
  void shed_backlog(tcp::acceptor& acc, const error_code& ec) {
    std::lock_guard<std::mutex> fd_guard{fd_mtx_};
    uint64_t shed = 0;
    if (reserve_fd_ >= 0) {
      ::close(std::exchange(reserve_fd_, -1));
      // async_accept made the acceptor non-blocking, so this stops at an
      // empty backlog; the bound keeps a connect flood from holding the loop.
      for (int i = 0; i < cfg_.backlog; ++i) {
        auto fd = ::accept4(acc.native_handle(), nullptr, nullptr,
                            SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0 && errno == EINTR)
          continue;
        if (fd < 0)
          break;
        {
          // Counted before the peer can see it, so stats() never trail.
          std::lock_guard<std::mutex> guard{mtx_};
          ++no_descriptors_;
        }
        metrics_registry::add(rt_->metrics.local().no_descriptors, 1);
        reset_close(fd);
        ++shed;
      }
      reserve_fd_ = open_reserve();
    }
    if (fd_burst_.add(shed))
      warn("out_of_descriptors",
           "accept on " + where() + " failed: " + ec.message() +
               "; resetting new connections until descriptors free up");
  }

  /// What the listener's log lines name: "port N", or its Unix path.
  std::string where() const {
    return cfg_.unix_path.empty() ? "port " + std::to_string(port_)
                                  : cfg_.unix_path;
  }

  // An accept worked: descriptors are back. Loop only.
  void descriptors_available() {
    std::lock_guard<std::mutex> fd_guard{fd_mtx_};
    if (reserve_fd_ < 0)
      reserve_fd_ = open_reserve();
    auto shed = fd_burst_.end();
    // accept() claims a descriptor before it looks at the backlog, so a
    // burst may have refused nobody.
    if (shed && *shed > 0)
      warn("refused_no_descriptors",
           where() + ": " + std::to_string(*shed) +
               " connections refused for lack of file descriptors");
    else if (shed)
      info("descriptors_available", where() + ": file descriptors available");
  }

  /// Counts a new connection against the limits, or resets it, counts and
  /// reports it and returns false. Every admitted connection must `release`
  /// its address once closed.
  bool admit(loop_socket& sock, const asio::ip::address& ip) {
    std::size_t limit = 0;
    bool per_ip = false;
    bool first = false;
    std::optional<uint64_t> refused;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      // Counted per address only under a per-address limit: otherwise the
      // map would cost every distinct client a node for nothing.
      std::size_t* same_ip = nullptr;
      if (cfg_.max_connections_per_ip != 0 && cfg_.unix_path.empty())
        same_ip = &per_ip_[ip];
      if (cfg_.max_connections != 0 && open_ >= cfg_.max_connections) {
        limit = cfg_.max_connections;
      } else if (same_ip && *same_ip >= cfg_.max_connections_per_ip) {
        limit = cfg_.max_connections_per_ip;
        per_ip = true;
      }
      if (limit == 0) {
        ++open_; // until on_finished
        if (same_ip)
          ++*same_ip;
        refused = limit_burst_.end();
      } else {
        if (same_ip && *same_ip == 0)
          per_ip_.erase(ip);
        ++over_limit_;
        first = limit_burst_.add(1);
      }
    }
    if (limit != 0)
      metrics_registry::add(rt_->metrics.local().over_limit, 1);
    if (refused)
      warn("refused_over_limit",
           where() + ": " + std::to_string(*refused) +
               " connections refused over the connection limit");
    if (limit == 0)
      return true;
    error_code ec;
    auto peer = cfg_.unix_path.empty() ? to_string(sock.remote_endpoint(ec))
                                       : cfg_.unix_path;
    // A reset, as in reset_close().
    sock.set_option(asio::socket_base::linger{true, 0}, ec);
    sock.close(ec);
    auto what = "listener limit " + std::to_string(limit) +
                (per_ip ? " per source address reached" : " reached");
    if (first)
      warn("connection_limit_reached",
           where() + ": " + what + " (" + peer +
               "); resetting new connections until connections close");
    // Not emit(): that logs every event, and a flood must not flood the log.
    if (observer_)
      caf::anon_send(observer_,
                     connection_event{connection_event::limited, 0, peer,
                                      make_error(errc::too_many_connections,
                                                 peer + ": " + what)});
    return false;
  }

  void release(const asio::ip::address& ip) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = per_ip_.find(ip);
    if (i != per_ip_.end() && --i->second == 0)
      per_ip_.erase(i);
  }

  void on_accepted(loop_socket sock, asio::io_context& target) {
    if (rt_->stopping()) {
      error_code ec;
      sock.close(ec);
      return;
    }
    error_code ec;
    // Unspecified if the peer reset already (ENOTCONN): it is still served
    // (its actor sees the reset) and counted under that address.
    tcp::endpoint remote;
    if (cfg_.unix_path.empty())
      remote = sock.remote_endpoint(ec);
    auto ip = remote.address();
    if (!admit(sock, ip))
      return;
    std::weak_ptr<listener_core> weak = shared_from_this();
    // The transport keeps `remote`, so on_finished releases the very address
    // admitted here.
    auto tr = socket_manager::make(*rt_, target, conn_cfg_, tag,
                                   std::move(sock), remote);
    auto t = socket_manager::from(tr);
    auto proxied = cfg_.proxy_protocol != proxy_protocol::off;
    metrics_registry::add(rt_->metrics.local().accepted, 1);
    {
      std::lock_guard<std::mutex> guard{mtx_};
      ++accepted_;
      if (tls_ || proxied)
        handshaking_.insert(t->conn_id());
    }
    if (proxied) {
      // The header comes first, before TLS (HAProxy sends it in the clear);
      // no actor exists until it is accepted.
      t->read_proxy_header(cfg_.proxy_protocol, cfg_.proxy_header_timeout,
                           [weak, tr]() mutable {
                             if (auto core = weak.lock())
                               core->secure(std::move(tr));
                           });
      return;
    }
    secure(std::move(tr));
  }

  /// TLS handshake if TLS is on, then the hand-over. On the connection's
  /// loop once a PROXY header was read, else on the accepting loop.
  void secure(caf::strong_actor_ptr tr) {
    if (!tls_) {
      hand_over(std::move(tr));
      return;
    }
    std::weak_ptr<listener_core> weak = shared_from_this();
    auto t = socket_manager::from(tr);
    // The user's handler sees only connections whose handshake succeeded.
    auto ctx = tls_->get();
    t->use_tls(ctx, ctx->new_server(), cfg_.tls.handshake_timeout);
    t->handshake([weak, tr]() mutable {
      if (auto core = weak.lock())
        core->hand_over(std::move(tr));
    });
  }

  /// Spawns the connection actor of an accepted (and secured) connection.
  void hand_over(caf::strong_actor_ptr tr) {
    std::weak_ptr<listener_core> weak = shared_from_this();
    auto t = socket_manager::from(tr);
    auto id = t->conn_id();
    auto peer = t->peer();
    {
      std::lock_guard<std::mutex> guard{mtx_};
      handshaking_.erase(id);
    }
    emit(connection_event::opened, id, peer, caf::error{});
    spawn_connection(
        rt_->sys, tr, on_connect_, [weak, id, peer](const caf::error& reason) {
          if (auto core = weak.lock()) {
            {
              std::lock_guard<std::mutex> guard{core->mtx_};
              ++core->rejected_;
            }
            core->emit(connection_event::rejected, id, peer, reason);
          }
        });
    // No monitor and no link: a failing actor takes only its transport down
    // (target_down), and on_closed hears of it from there. A monitor cost
    // every connection an attachable and every close a down message.
  }

  /// open() for a Unix-domain listener. Its descriptor goes into a tcp-typed
  /// acceptor: accepting does not depend on the address family, and the
  /// accept loop, its limits and backoff stay one. Requires `mtx_`.
  caf::expected<uint16_t> open_unix(caf::actor self) {
    auto sock = listen_unix(cfg_.unix_path, cfg_.unix_mode, cfg_.backlog,
                            cfg_.connection);
    if (!sock)
      return std::move(sock.error());
    auto acc = std::make_shared<tcp::acceptor>(*loop_);
    error_code ec;
    acc->assign(tcp::v4(), sock->fd, ec);
    if (ec) {
      ::close(sock->fd);
      remove_unix_file(cfg_.unix_path, *sock);
      return make_error(errc::bind_failed,
                        cfg_.unix_path + ": " + ec.message());
    }
    unix_socket_ = *sock;
    acceptor_ = acc;
    self_ = std::move(self);
    asio::post(*loop_, [core = shared_from_this(), acc] {
      core->accept(acc, nullptr);
    });
    info("listening", "listening on " + cfg_.unix_path);
    return uint16_t{0};
  }

  /// A Unix-domain listener stopped: its socket file goes with it.
  void remove_socket_file() {
    std::optional<unix_listen_socket> sock;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      // Started again meanwhile: the file there is the new socket's.
      if (acceptor_)
        return;
      sock.swap(unix_socket_);
    }
    if (sock)
      remove_unix_file(cfg_.unix_path, *sock);
  }

  /// Listener loop: completes a drain if nothing is open or `force`.
  void finish_drain(bool force) {
    std::function<void(uint64_t)> done;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!drain_done_ || (!force && open_ != 0))
        return;
      done = std::move(drain_done_);
      drain_done_ = nullptr;
    }
    if (drain_timer_) {
      drain_timer_->cancel();
      drain_timer_ = nullptr;
    }
    auto left = close_all(make_error(errc::shutdown, "drain deadline passed"));
    if (left != 0)
      log::write(log::level::warning, "drain deadline passed: closed " +
                                          std::to_string(left) +
                                          " connection(s)");
    when_all_closed([done = std::move(done), left] { done(left); });
  }

  void certificates(std::vector<certificate_expiry>& out) const override {
    if (!tls_)
      return;
    std::string where;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!acceptor_)
        return; // not serving: nothing that could expire on anyone
      // Brackets keep an IPv6 literal apart from its port.
      where = !cfg_.unix_path.empty() ? cfg_.unix_path
              : cfg_.host.find(':') != std::string::npos
                  ? "[" + cfg_.host + "]:" + std::to_string(port_)
                  : cfg_.host + ":" + std::to_string(port_);
    }
    auto now =
        std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    for (auto& c : tls_->get()->certificates())
      out.push_back(certificate_expiry{
          where, c.file, c.sni, c.not_after - static_cast<int64_t>(now)});
  }

  /// A connection's transport closed: frees its slot of the limits.
  void on_finished(socket_manager& t, const caf::error& reason) override {
    release(t.remote_address());
    on_closed(t, reason);
  }

  void on_closed(socket_manager& t, const caf::error& reason) {
    bool secured;
    bool proxy_bad = false;
    bool drained = false;
    std::vector<std::function<void()>> all_closed;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      --open_;
      drained = drain_done_ && open_ == 0;
      if (open_ == 0)
        all_closed.swap(all_closed_);
      secured = handshaking_.erase(t.conn_id()) == 0;
      // Closed before its PROXY header was accepted (TLS comes after it):
      // a bad or late header, or a stop meanwhile.
      proxy_bad = !secured && cfg_.proxy_protocol != proxy_protocol::off &&
                  !t.uses_tls();
      if (proxy_bad)
        ++proxy_failed_;
      else if (!secured)
        ++handshake_failed_;
    }
    if (drained)
      asio::post(*loop_,
                 [core = shared_from_this()] { core->finish_drain(false); });
    for (auto& f : all_closed)
      f();
    if (!secured) {
      // Never opened for the user: one event with the PROXY header's or
      // OpenSSL's reason.
      emit(proxy_bad ? connection_event::proxy_failed
                     : connection_event::handshake_failed,
           t.conn_id(), t.peer(), reason);
      return;
    }
    auto k = kind(reason);
    if (k == errc::rejected)
      return; // on_reject already reported it
    if (k == errc::handler_failed) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        ++failed_;
      }
      if (log::enabled(log::level::warning))
        log::write(log::level::warning,
                   "connection actor failed: " + describe(reason));
      emit(connection_event::failed, t.conn_id(), t.peer(), reason);
    }
    emit(connection_event::closed, t.conn_id(), t.peer(), reason);
  }

  runtime::impl* rt_;
  asio::io_context* loop_;
  std::shared_ptr<tls_context_holder> tls_; // null: plain TCP
  listener_config cfg_;
  std::shared_ptr<const connection_config> conn_cfg_;
  std::shared_ptr<const connect_handler> on_connect_;
  caf::actor observer_;

  mutable std::mutex mtx_;
  std::shared_ptr<tcp::acceptor> acceptor_;
  // reuse_port: the acceptors on the other loops, and their loops.
  std::vector<std::pair<std::shared_ptr<tcp::acceptor>, asio::io_context*>>
      extra_acceptors_;
  // The listener keeps itself alive while it accepts.
  caf::actor self_;
  // A Unix-domain listener's bound socket file, removed on stop.
  std::optional<unix_listen_socket> unix_socket_;
  uint16_t port_ = 0;
  // Admitted and not yet finished; the transports themselves are in the
  // runtime's registry under our tag.
  std::size_t open_ = 0;
  // TLS connections still shaking hands: the user has not seen them.
  std::unordered_set<connection_id> handshaking_;
  uint64_t accepted_ = 0;
  uint64_t rejected_ = 0;
  uint64_t failed_ = 0;
  uint64_t handshake_failed_ = 0;
  uint64_t proxy_failed_ = 0;
  std::function<void(uint64_t)> drain_done_;        // set while draining
  std::vector<std::function<void()>> all_closed_;   // stops and drains
  std::shared_ptr<asio::steady_timer> drain_timer_; // listener loop only
  // Open connections per source address, for max_connections_per_ip.
  std::map<asio::ip::address, std::size_t> per_ip_;
  uint64_t over_limit_ = 0;
  uint64_t no_descriptors_ = 0;
  refusal_burst limit_burst_;
  // Accepting loops only, under fd_mtx_ (several with reuse_port): -1 while
  // given up or unavailable.
  std::mutex fd_mtx_;
  int reserve_fd_;
  refusal_burst fd_burst_;
};

namespace {

struct listener_state {
  std::shared_ptr<listener_core> core;
  std::unordered_map<uint64_t, caf::response_promise> stops;
  std::unordered_map<uint64_t, caf::typed_response_promise<uint64_t>> drains;
  uint64_t next_stop = 0;
};

caf::behavior listener_fun(caf::stateful_actor<listener_state>* self,
                           std::shared_ptr<listener_core> core) {
  self->state.core = core;
  self->attach_functor([core] { core->stop(true, {}); });
  auto stop = [self](bool immediate) {
    auto rp = self->make_response_promise();
    auto token = ++self->state.next_stop;
    self->state.stops.emplace(token, rp);
    self->state.core->stop(immediate,
                           [hdl = caf::actor_cast<caf::actor>(self), token] {
                             caf::anon_send(hdl, stopped_atom::value, token);
                           });
    return rp;
  };
  return {
      [self](start_atom) -> caf::result<uint16_t> {
        auto res = self->state.core->open(caf::actor_cast<caf::actor>(self));
        if (!res)
          return std::move(res.error());
        return *res;
      },
      [stop](graceful_stop_atom) { return stop(false); },
      [stop](immediate_stop_atom) { return stop(true); },
      [self](stopped_atom, uint64_t token) {
        auto i = self->state.stops.find(token);
        if (i != self->state.stops.end()) {
          i->second.deliver(caf::unit);
          self->state.stops.erase(i);
        }
      },
      [self](stats_atom) { return self->state.core->stats(); },
      [self](drain_atom, caf::timespan deadline) {
        auto rp = self->make_response_promise<uint64_t>();
        auto token = ++self->state.next_stop;
        self->state.drains.emplace(token, rp);
        // Delivered from inside this actor, like the stops.
        self->state.core->drain(
            deadline,
            [hdl = caf::actor_cast<caf::actor>(self), token](uint64_t forced) {
              caf::anon_send(hdl, drained_atom::value, token, forced);
            });
        return rp;
      },
      [self](drained_atom, uint64_t token, uint64_t forced) {
        auto i = self->state.drains.find(token);
        if (i != self->state.drains.end()) {
          i->second.deliver(forced);
          self->state.drains.erase(i);
        }
      },
      [self](tls_reload_atom) -> caf::result<void> {
        if (auto err = self->state.core->reload_tls())
          return err;
        return caf::unit;
      },
  };
}

} // namespace

caf::expected<listener> spawn_listener(runtime& rt, listener_config cfg,
                                       connect_handler on_connect,
                                       caf::actor observer) {
  if (auto err = cfg.validate())
    return err;
  if (!on_connect)
    return make_error(errc::invalid_config, "listener: on_connect must be set");
  auto& impl = rt.internals();
  auto host = cfg.unix_path.empty() ? cfg.host : cfg.unix_path;
  std::shared_ptr<tls_context_holder> tls;
  if (cfg.tls.enabled) {
    // Every file is read and checked now, so a bad one never leaves a
    // listener that accepts and then fails each handshake.
    auto ctx =
        tls_context::make(cfg.tls, tls_context::role::server, "listener.tls");
    if (!ctx)
      return std::move(ctx.error());
    tls = std::make_shared<tls_context_holder>(
        std::move(*ctx), cfg.tls, tls_context::role::server, "listener.tls");
  }
  auto core = std::make_shared<listener_core>(
      impl, std::move(cfg), std::move(on_connect), std::move(observer), tls);
  impl.observe(core);
  auto hdl = impl.sys.spawn(listener_fun, core);
  auto port = core->open(hdl);
  if (!port) {
    core->abandon();
    caf::anon_send_exit(hdl, caf::exit_reason::user_shutdown);
    return std::move(port.error());
  }
  core->hook_token = impl.hook([core, hdl] {
    core->detach();
    caf::anon_send_exit(hdl, caf::exit_reason::user_shutdown);
  });
  return listener{caf::actor_cast<listener_actor>(hdl), host, *port};
}

} // namespace tcpactor
