#include "tcpactor/runtime.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include <caf/actor_system_config.hpp>
#include <caf/settings.hpp>

#include "runtime_impl.hpp"
#include "scheduler.hpp"
#include "socket_manager.hpp"
#include "tcpactor/log.hpp"
#include "tcpactor/metrics.hpp"
#include "tls_context.hpp"

namespace tcpactor {

namespace {

constexpr auto moderate_sleep_key = "work-stealing.moderate-sleep-duration";

} // namespace

void configure(caf::actor_system_config& cfg) {
  add_error_category(cfg);
  // An idle CAF 0.17 work-stealing worker first polls its queue 500 times
  // with a 50 us sleep in between, and only then waits on its condition
  // variable; an enqueue from another thread wakes a worker only in that
  // last state. A chunk that lands during the sleeps waits 50 us plus timer
  // slack, longer than the rest of a loopback round trip. Polling without
  // sleeps, then waiting, starts it at once: ping-pong 116k -> 160k msg/s.
  if (caf::get_if(&caf::content(cfg), moderate_sleep_key) == nullptr)
    cfg.set(moderate_sleep_key, caf::timespan{0});
  // CAF's scheduler, but an ending actor that never set a timeout does not
  // wake the clock thread (detail::timeout_clock): connect churn ends an
  // actor per connection. Once, however often configure() runs.
  using factory = caf::actor_system::module* (*)(caf::actor_system&);
  for (auto& f : cfg.module_factories)
    if (auto p = f.target<factory>(); p && *p == &detail::make_scheduler)
      return;
  cfg.module_factories.emplace_back(&detail::make_scheduler);
}

// -- runtime::impl ------------------------------------------------------------

void runtime::impl::add(socket_manager* t) {
  bool late;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    // The registry's reference, given back in remove().
    intrusive_ptr_add_ref(t->ctrl());
    t->reg_prev_ = nullptr;
    t->reg_next_ = head_;
    if (head_)
      head_->reg_prev_ = t;
    head_ = t;
    t->registered_ = true;
    ++live_;
    late = stopping_;
  }
  // Born while shutdown waits for the rest: close it like the others (the
  // loops still run until every transport is gone).
  if (late)
    t->abort(make_error(errc::shutdown, "runtime shutting down"));
}

void runtime::impl::remove(socket_manager* t) {
  bool wake;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!t->registered_)
      return;
    t->registered_ = false;
    if (t->reg_prev_)
      t->reg_prev_->reg_next_ = t->reg_next_;
    else
      head_ = t->reg_next_;
    if (t->reg_next_)
      t->reg_next_->reg_prev_ = t->reg_prev_;
    t->reg_prev_ = t->reg_next_ = nullptr;
    --live_;
    wake = stopping_; // only shutdown() waits on cv_
  }
  if (wake)
    cv_.notify_all();
  // Outside the lock: the last reference may destroy `t` (the caller holds
  // another, but a transport's destructor must never run under mtx_).
  intrusive_ptr_release(t->ctrl());
}

template <class F>
void runtime::impl::for_each_locked(F fn) const {
  for (auto t = head_; t != nullptr; t = t->reg_next_)
    fn(t);
}

std::vector<caf::strong_actor_ptr> runtime::impl::all_locked() const {
  std::vector<caf::strong_actor_ptr> xs;
  xs.reserve(live_);
  for_each_locked([&](socket_manager* t) { xs.emplace_back(t->ctrl()); });
  return xs;
}

std::vector<caf::strong_actor_ptr>
runtime::impl::owned_by(uint64_t owner) const {
  std::vector<caf::strong_actor_ptr> xs;
  std::lock_guard<std::mutex> guard{mtx_};
  for_each_locked([&](socket_manager* t) {
    // A finished one stays listed until the very end of finish(), after its
    // listener already counted it as closed.
    if (t->owner_ == owner && !t->getf(caf::abstract_actor::is_terminated_flag))
      xs.emplace_back(t->ctrl());
  });
  return xs;
}

namespace {

std::atomic<uint64_t> next_observer_tag{0};

} // namespace

finish_observer::finish_observer() : tag(++next_observer_tag) {
  // nop
}

void runtime::impl::observe(const std::shared_ptr<finish_observer>& obs) {
  std::lock_guard<std::mutex> guard{mtx_};
  observers_.emplace(obs->tag, obs);
}

void runtime::impl::forget(uint64_t tag) {
  std::lock_guard<std::mutex> guard{mtx_};
  observers_.erase(tag);
}

std::shared_ptr<finish_observer> runtime::impl::observer(uint64_t tag) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = observers_.find(tag);
  return i != observers_.end() ? i->second.lock() : nullptr;
}

uint64_t runtime::impl::hook(std::function<void()> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto token = ++next_hook_;
  hooks_.emplace(token, std::move(fn));
  return token;
}

void runtime::impl::unhook(uint64_t token) {
  std::lock_guard<std::mutex> guard{mtx_};
  hooks_.erase(token);
}

std::size_t runtime::impl::live() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return live_;
}

runtime_metrics runtime::impl::snapshot() const {
  runtime_metrics out;
  metrics.snapshot(out);
  std::vector<std::shared_ptr<finish_observer>> listeners;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& kvp : observers_)
      if (auto obs = kvp.second.lock())
        listeners.push_back(std::move(obs));
  }
  // Outside the lock: a listener takes its own, and the order listener ->
  // runtime is the only one allowed.
  for (auto& obs : listeners)
    obs->certificates(out.certificates);
  return out;
}

asio::thread_pool& runtime::impl::crypto() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!crypto_)
    crypto_ = std::make_unique<asio::thread_pool>(pool.size());
  return *crypto_;
}

caf::expected<std::shared_ptr<tls_context>>
runtime::impl::client_tls(const tls_config& cfg) {
  // Every field that shapes the context, separated by a byte no path or
  // name contains.
  std::string key;
  auto add = [&key](const std::string& x) {
    key += x;
    key += '\0';
  };
  for (auto* x :
       {&cfg.cert_file, &cfg.key_file, &cfg.key_password, &cfg.pkcs12_file,
        &cfg.pkcs12_password, &cfg.ca_file, &cfg.ca_dir, &cfg.server_name,
        &cfg.min_version, &cfg.max_version, &cfg.ciphers, &cfg.ciphersuites})
    add(*x);
  for (auto& x : cfg.alpn)
    add(x);
  add(std::to_string(cfg.verify_peer) + std::to_string(cfg.send_sni) +
      std::to_string(cfg.session_resumption) + ":" +
      std::to_string(cfg.session_timeout.count()));
  std::lock_guard<std::mutex> guard{tls_mtx_};
  if (auto i = client_tls_.find(key); i != client_tls_.end())
    return i->second;
  auto ctx = tls_context::make(cfg, tls_context::role::client, "client.tls");
  if (!ctx)
    return ctx;
  // A bound for programs that build many distinct configurations.
  if (client_tls_.size() >= 64)
    client_tls_.erase(client_tls_.begin());
  client_tls_.emplace(std::move(key), *ctx);
  return ctx;
}

bool runtime::impl::stopping() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return stopping_;
}

void runtime::impl::shutdown() {
  std::unordered_map<uint64_t, std::function<void()>> hooks;
  std::vector<caf::strong_actor_ptr> open;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopped_)
      return;
    stopping_ = true;
    hooks.swap(hooks_);
    open = all_locked();
  }
  // Listeners first, so nothing new arrives while we close the rest.
  for (auto& kvp : hooks)
    kvp.second();
  // Graceful first: each connection flushes what it queued, bounded by its
  // own close_timeout; whatever is left after that is cut.
  for (auto& ptr : open)
    socket_manager::from(ptr)->close();
  open.clear();
  std::unique_lock<std::mutex> guard{mtx_};
  if (!cv_.wait_for(guard, std::chrono::seconds{60},
                    [this] { return live_ == 0; })) {
    open = all_locked();
    guard.unlock();
    for (auto& ptr : open)
      socket_manager::from(ptr)->abort(
          make_error(errc::shutdown, "runtime shutting down"));
    open.clear();
    guard.lock();
    // The loops still run, so every abort completes; the bound only guards
    // against a bug turning shutdown into a hang.
    if (!cv_.wait_for(guard, std::chrono::seconds{10},
                      [this] { return live_ == 0; }))
      log::write(log::level::error,
                 "runtime shutdown: " + std::to_string(live_) +
                     " connections did not close within 10s");
  }
  auto crypto = std::move(crypto_);
  guard.unlock();
  // Handshake steps still queued see their transport finished and return.
  if (crypto)
    crypto->join();
  pool.stop();
  guard.lock();
  stopped_ = true;
}

// -- runtime ------------------------------------------------------------------

caf::expected<runtime> runtime::make(caf::actor_system& sys,
                                     runtime_config cfg) {
  if (auto err = cfg.validate())
    return err;
  auto n = cfg.io_threads;
  if (n == 0)
    // Half the hardware threads: the other half runs the handlers (CAF's
    // scheduler) and, on a small box, whatever else shares it. On 2 cores
    // one loop beat two: ping-pong +14%, stream +12% (README, Performance).
    n = std::max(1u, std::thread::hardware_concurrency() / 2);
  // Nobody chose the setting: a third of ping-pong's throughput is lost
  // without a word otherwise.
  if (caf::get_if(&caf::content(sys.config()), moderate_sleep_key) == nullptr)
    log::write(log::level::warning,
               "the actor system was made without tcpactor::configure(cfg): "
               "CAF's idle workers sleep 50us between polls, and an actor a "
               "socket wakes waits for that (about a third less ping-pong "
               "throughput); call configure() before making the system, or "
               "set work-stealing.moderate-sleep-duration yourself");
  return runtime{std::make_unique<impl>(sys, cfg, n)};
}

runtime::runtime(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
  // nop
}

runtime::runtime(runtime&&) noexcept = default;

runtime& runtime::operator=(runtime&& other) noexcept {
  if (this != &other) {
    shutdown();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

runtime::~runtime() {
  shutdown();
}

caf::actor_system& runtime::system() const noexcept {
  return impl_->sys;
}

std::size_t runtime::io_threads() const noexcept {
  return impl_->pool.size();
}

std::size_t runtime::open_connections() const noexcept {
  return impl_->live();
}

runtime_metrics runtime::metrics() const {
  return impl_->snapshot();
}

void runtime::shutdown() {
  if (impl_)
    impl_->shutdown();
}

} // namespace tcpactor
