// A client that reconnects: an actor that owns one client_actor at a time and
// spawns the next one after a backoff. It sits on top of spawn_client, so the
// transport knows nothing about reconnects and TLS works unchanged.

#include "tcpactor/reconnecting_client.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include "client_impl.hpp"
#include "runtime_impl.hpp"
#include "tcpactor/errors.hpp"
#include "tcpactor/log.hpp"

namespace tcpactor {

namespace {

caf::error bad(const std::string& field, const std::string& what) {
  return make_error(errc::invalid_config, "reconnect." + field + ": " + what);
}

/// `(retry_atom, uint64_t generation)`: the backoff timer fired.
using retry_atom = caf::atom_constant<caf::atom("tcpa_retry")>;
/// `(rt_stop_atom)`: the runtime began shutting down.
using rt_stop_atom = caf::atom_constant<caf::atom("tcpa_rtstp")>;

/// The actor's only way to the runtime. A `runtime` may be moved or destroyed
/// while the actor waits for a timer, so the actor never holds a reference:
/// the shutdown hook clears `rt` under `mtx`, and every use checks it under
/// the same lock.
struct runtime_link {
  explicit runtime_link(runtime::impl* ptr) : rt(ptr) {
    // nop
  }
  std::mutex mtx;
  runtime::impl* rt;
  uint64_t hook_token = 0;
};

/// A write held while disconnected.
struct held_write {
  caf::response_promise rp;
  bytes data;
};

class reconnecting_client : public caf::event_based_actor {
public:
  reconnecting_client(caf::actor_config& cfg, reconnecting_client_config rc,
                      caf::actor owner, std::shared_ptr<runtime_link> link)
      : caf::event_based_actor(cfg), cfg_(std::move(rc)),
        owner_(std::move(owner)), link_(std::move(link)),
        peer_(cfg_.client.unix_path.empty()
                  ? cfg_.client.host + ":" + std::to_string(cfg_.client.port)
                  : cfg_.client.unix_path),
        rng_(std::random_device{}()) {
    // nop
  }

  const char* name() const override { return "tcpactor.reconnecting_client"; }

  caf::behavior make_behavior() override {
    // Monitor, never link: the owner's failure must not kill us, nor ours
    // the owner.
    monitor(owner_);
    set_down_handler([this](caf::down_msg& dm) {
      if (dm.source == owner_.address())
        stop_now(caf::none);
    });
    // Exit messages jump the queue, so nothing waits for a flush here.
    set_exit_handler([this](caf::exit_msg& em) { stop_now(em.reason); });
    // CAF's default handler would kill us silently: held writes would go
    // unanswered and the owner would never see `closed`.
    set_exception_handler([this](std::exception_ptr& eptr) -> caf::error {
      std::string what = "unknown exception";
      try {
        std::rethrow_exception(eptr);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        // keep the default text
      }
      auto err = make_error(errc::handler_failed, peer_ + ": " + what);
      stop_now(err);
      return err;
    });
    connect();
    return {
        [this](write_atom, bytes& data) { on_write(std::move(data)); },
        [this](close_atom) { on_close(); },
        [this](connected_atom) {
          if (from_inner())
            on_connected();
        },
        [this](error_atom, caf::error& err) {
          if (from_inner())
            inner_error_ = std::move(err);
        },
        [this](closed_atom) {
          if (from_inner())
            on_inner_closed();
        },
        [this](bytes& chunk) { relay_chunk(std::move(chunk)); },
        [this](retry_atom, uint64_t gen) {
          if (state_ == state::waiting && gen == timer_gen_)
            connect();
        },
        [this](rt_stop_atom) {
          // With a connection (or an attempt) under way, the runtime closes
          // it and on_inner_closed gives up; only a pending timer needs us.
          if (state_ == state::waiting)
            give_up(make_error(errc::shutdown, "runtime shutting down"));
        },
    };
  }

  void on_exit() override {
    // Whatever path led here, the connection must not outlive us and no
    // request may stay unanswered.
    fail_held(make_error(errc::closed, peer_ + ": reconnecting client gone"),
              false);
    if (inner_)
      caf::anon_send(inner_, close_atom::value);
    inner_ = nullptr;
    std::lock_guard<std::mutex> guard{link_->mtx};
    if (link_->rt && link_->hook_token != 0)
      link_->rt->unhook(link_->hook_token);
    link_->rt = nullptr;
  }

private:
  // Forward only, like connection states: `closing` and `closed` never go
  // back to reconnecting.
  enum class state : uint8_t { connecting, open, waiting, closing, closed };

  bool from_inner() {
    return inner_ &&
           current_sender() == caf::actor_cast<caf::strong_actor_ptr>(inner_);
  }

  // -- connect and back off ---------------------------------------------------

  void connect() {
    ++attempt_;
    caf::expected<client_actor> res = caf::error{};
    {
      std::lock_guard<std::mutex> guard{link_->mtx};
      if (link_->rt)
        res = spawn_client_on(*link_->rt, cfg_.client,
                              caf::actor_cast<caf::actor>(this));
      else
        res = make_error(errc::shutdown, "runtime shutting down");
    }
    if (!res) {
      if (kind(res.error()) == errc::shutdown)
        return give_up(std::move(res.error()));
      return attempt_failed(std::move(res.error()));
    }
    inner_ = std::move(*res);
    inner_error_ = caf::none;
    state_ = state::connecting;
  }

  void on_connected() {
    if (state_ != state::connecting)
      return; // closing: the connection is on its way down already
    state_ = state::open;
    send(owner_, connected_atom::value, attempt_, peer_);
    open_attempt_ = attempt_;
    attempt_ = 0;
    waits_ = 0;
    // Held writes first: they were made before anything sent from now on.
    held_bytes_ = 0;
    auto held = std::move(held_);
    held_.clear();
    for (auto& x : held)
      x.rp.delegate(inner_, write_atom::value, std::move(x.data));
  }

  void on_inner_closed() {
    inner_ = nullptr;
    auto err = std::move(inner_error_);
    inner_error_ = caf::none;
    switch (state_) {
      case state::open:
        if (!err)
          err = make_error(errc::peer_closed, peer_ + ": closed by peer");
        send(owner_, disconnected_atom::value, open_attempt_, err);
        log_event("disconnected", err);
        // The connection worked, so the count starts afresh; the first wait
        // is the shortest again.
        attempt_ = 0;
        if (runtime_gone())
          return give_up(make_error(errc::shutdown, "runtime shutting down"));
        return schedule_retry();
      case state::connecting:
        if (!err)
          err = make_error(errc::connect_failed, peer_);
        return attempt_failed(std::move(err));
      case state::closing:
        // A failing flush is news; a connect cut short by our own close
        // is not.
        if (err && closing_open_)
          send(owner_, disconnected_atom::value, open_attempt_, err);
        return finish();
      case state::waiting:
      case state::closed:
        return;
    }
  }

  void attempt_failed(caf::error err) {
    send(owner_, disconnected_atom::value, attempt_, err);
    log_event("attempt " + std::to_string(attempt_) + " failed", err);
    if (cfg_.max_attempts != 0 && attempt_ >= cfg_.max_attempts)
      return give_up(std::move(err));
    if (runtime_gone())
      return give_up(make_error(errc::shutdown, "runtime shutting down"));
    schedule_retry();
  }

  bool runtime_gone() {
    std::lock_guard<std::mutex> guard{link_->mtx};
    return link_->rt == nullptr;
  }

  void schedule_retry() {
    state_ = state::waiting;
    ++waits_;
    ++timer_gen_;
    delayed_send(this, backoff(waits_), retry_atom::value, timer_gen_);
  }

  /// The k-th wait since the last successful connect.
  std::chrono::milliseconds backoff(uint32_t k) {
    auto cap = static_cast<double>(cfg_.max_backoff.count());
    auto base =
        std::min(cap, static_cast<double>(cfg_.initial_backoff.count()) *
                          std::pow(cfg_.multiplier, k - 1.0));
    std::uniform_real_distribution<double> u{0.0, 1.0};
    auto wait = base * (1.0 - cfg_.jitter * u(rng_));
    return std::chrono::milliseconds{std::llround(wait)};
  }

  // -- writes -----------------------------------------------------------------

  void on_write(bytes data) {
    auto rp = make_response_promise();
    switch (state_) {
      case state::open:
        rp.delegate(inner_, write_atom::value, std::move(data));
        return;
      case state::connecting:
      case state::waiting:
        if (held_bytes_ + data.size() > cfg_.max_buffered_bytes)
          return refuse(rp, data.size(),
                        make_error(errc::write_overflow,
                                   peer_ + ": disconnected, and " +
                                       std::to_string(held_bytes_) + " + " +
                                       std::to_string(data.size()) +
                                       " bytes exceed max_buffered_bytes (" +
                                       std::to_string(cfg_.max_buffered_bytes) +
                                       ")"));
        held_bytes_ += data.size();
        held_.push_back(held_write{std::move(rp), std::move(data)});
        return;
      case state::closing:
      case state::closed:
        return refuse(
            rp, data.size(),
            make_error(errc::closed, peer_ + ": reconnecting client closed"));
    }
  }

  void refuse(caf::response_promise& rp, std::size_t n, caf::error err) {
    send(owner_, unsent_atom::value, uint64_t{1}, uint64_t{n}, err);
    rp.deliver(std::move(err));
  }

  /// Answers every held write with `err`; tells the owner if `notify`.
  /// Returns the bytes dropped.
  uint64_t fail_held(const caf::error& err, bool notify) {
    uint64_t writes = held_.size();
    uint64_t n = held_bytes_;
    auto held = std::move(held_);
    held_.clear();
    held_bytes_ = 0;
    for (auto& x : held)
      x.rp.deliver(err);
    if (notify && writes > 0)
      send(owner_, unsent_atom::value, writes, n, err);
    return n;
  }

  // -- chunks -----------------------------------------------------------------

  void relay_chunk(bytes chunk) {
    // A request of our own, so the owner sees this actor as sender; the
    // transport counts the chunk as unanswered until the reply is relayed.
    auto rp = make_response_promise();
    request(owner_, caf::infinite, std::move(chunk))
        .then([rp](bytes& out) mutable { rp.deliver(std::move(out)); },
              [rp](caf::error& err) mutable {
                // A handler that returns nothing means "write nothing", as it
                // does for spawn_client.
                if (err == caf::sec::unexpected_response)
                  rp.deliver(bytes{});
                else
                  rp.deliver(std::move(err));
              });
  }

  // -- stopping ---------------------------------------------------------------

  void on_close() {
    switch (state_) {
      case state::open:
        // The transport flushes what it queued, bounded by close_timeout,
        // and then tells us `closed`.
        state_ = state::closing;
        closing_open_ = true;
        send(inner_, close_atom::value);
        return;
      case state::connecting:
        fail_held(make_error(errc::closed, peer_ + ": closed while connecting"),
                  true);
        state_ = state::closing;
        send(inner_, close_atom::value);
        return;
      case state::waiting:
        fail_held(
            make_error(errc::closed, peer_ + ": closed while disconnected"),
            true);
        return finish();
      case state::closing:
      case state::closed:
        return;
    }
  }

  void give_up(caf::error reason) {
    log_event("gave up after " + std::to_string(attempt_) + " attempts",
              reason);
    auto unsent = fail_held(
        make_error(errc::closed, peer_ + ": gave up: " + describe(reason)),
        true);
    send(owner_, gave_up_atom::value, reason, unsent);
    finish();
  }

  /// The owner is gone, an exit message came or we threw: no flush, no wait.
  void stop_now(const caf::error& reason) {
    if (state_ == state::closed)
      return;
    auto err =
        make_error(errc::closed, peer_ + ": reconnecting client stopped");
    fail_held(err, true);
    if (inner_) {
      send(inner_, close_atom::value);
      inner_ = nullptr;
    }
    state_ = state::closed;
    send(owner_, closed_atom::value);
    quit(reason);
  }

  void finish() {
    state_ = state::closed;
    send(owner_, closed_atom::value);
    quit();
  }

  void log_event(const std::string& what, const caf::error& err) {
    if (log::enabled(log::level::info))
      log::write(log::level::info, "reconnecting client " + peer_ + ": " +
                                       what + ": " + describe(err));
  }

  reconnecting_client_config cfg_;
  caf::actor owner_;
  std::shared_ptr<runtime_link> link_;
  std::string peer_;
  std::minstd_rand rng_;
  state state_ = state::connecting;
  client_actor inner_;
  caf::error inner_error_;    // the `error` that came before `closed`
  uint32_t attempt_ = 0;      // attempts since the last successful connect
  uint32_t open_attempt_ = 0; // what `connected` said for this connection
  uint32_t waits_ = 0;        // waits since the last successful connect
  bool closing_open_ = false; // close_atom came while connected
  uint64_t timer_gen_ = 0;
  std::deque<held_write> held_;
  std::size_t held_bytes_ = 0;
};

} // namespace

caf::error reconnecting_client_config::validate() const {
  if (auto err = client.validate()) {
    // Name the field as the caller sees it: reconnect.client.host.
    auto& ctx = err.context();
    if (ctx.match_elements<std::string>())
      return make_error(kind(err), "reconnect." + ctx.get_as<std::string>(0));
    return err;
  }
  if (initial_backoff.count() <= 0)
    return bad("initial_backoff", "must be positive");
  if (max_backoff < initial_backoff)
    return bad("max_backoff", "must be at least initial_backoff (" +
                                  std::to_string(initial_backoff.count()) +
                                  "ms)");
  if (!(multiplier >= 1.0) || !std::isfinite(multiplier))
    return bad("multiplier", "must be at least 1");
  if (!(jitter >= 0.0 && jitter <= 1.0))
    return bad("jitter", "must be 0-1 (a fraction of the wait)");
  return caf::none;
}

caf::expected<reconnecting_client_actor>
spawn_reconnecting_client(runtime& rt, reconnecting_client_config cfg,
                          caf::actor owner) {
  if (auto err = cfg.validate())
    return err;
  if (!owner)
    return make_error(errc::invalid_config, "reconnect: owner must be set");
  auto& impl = rt.internals();
  if (impl.stopping())
    return make_error(errc::shutdown, "runtime is shutting down");
  // Later attempts reuse this context (the runtime caches it), so a bad
  // certificate path fails here rather than at every attempt.
  if (cfg.client.tls.enabled)
    if (auto ctx = impl.client_tls(cfg.client.tls); !ctx)
      return std::move(ctx.error());
  auto link = std::make_shared<runtime_link>(&impl);
  auto hdl = impl.sys.spawn<reconnecting_client>(std::move(cfg),
                                                 std::move(owner), link);
  {
    std::lock_guard<std::mutex> guard{link->mtx};
    // Null if the actor already quit (on_exit cleared it).
    if (link->rt)
      link->hook_token = impl.hook([link, hdl] {
        {
          std::lock_guard<std::mutex> guard{link->mtx};
          link->rt = nullptr;
        }
        caf::anon_send(hdl, rt_stop_atom::value);
      });
  }
  return caf::actor_cast<reconnecting_client_actor>(hdl);
}

} // namespace tcpactor
