// Back-end nodes for the connections of a listener: which node a connection
// gets, linking to nodes through the middleman and relinking lost ones.

#include "tcpactor/backend_pool.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <set>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/send.hpp>

#include "connection_impl.hpp"
#include "tcpactor/errors.hpp"
#include "tcpactor/log.hpp"

namespace tcpactor {

namespace {

using retry_atom = caf::atom_constant<caf::atom("tcpa_retry")>;

void say(log::level lvl, std::string_view event, const std::string& msg) {
  if (log::enabled(lvl))
    log::write(lvl, event, msg);
}

void warn(std::string_view event, const std::string& msg) {
  say(log::level::warning, event, msg);
}

void info(std::string_view event, const std::string& msg) {
  say(log::level::info, event, msg);
}

} // namespace

caf::error backend_pool_config::validate() const {
  auto bad = [](const std::string& field, const std::string& what) {
    return make_error(errc::invalid_config,
                      "backend_pool." + field + ": " + what);
  };
  if (backends.empty())
    return bad("backends", "needs at least one HOST:PORT");
  for (auto& b : backends) {
    if (b.host.empty())
      return bad("backends", "an entry has no host");
    if (b.port == 0)
      return bad("backends", b.host + " has port 0");
  }
  if (request_timeout.count() <= 0)
    return bad("request_timeout", "must be positive");
  if (connect_timeout.count() <= 0)
    return bad("connect_timeout", "must be positive");
  if (initial_backoff.count() <= 0)
    return bad("initial_backoff", "must be positive");
  if (max_backoff < initial_backoff)
    return bad("max_backoff", "must be at least initial_backoff");
  return caf::none;
}

/// State shared by the linking actor and the connections: which node is up
/// and how many connections each serves. Connections read it under the
/// mutex once, when they open; the linking actor changes it.
struct backend_pool::impl {
  struct node {
    backend_status status;
    backend_actor handle;     // set while up
    std::size_t attempts = 0; // consecutive failures
  };

  backend_pool_config cfg;
  mutable std::mutex mtx;
  mutable std::condition_variable changed;
  std::vector<node> nodes;
  std::size_t next = 0; // round robin position
  caf::actor linker;

  struct lease {
    std::size_t index;
    backend_actor handle;
    std::string name;
  };

  caf::expected<lease> acquire() {
    std::lock_guard<std::mutex> guard{mtx};
    auto n = nodes.size();
    std::size_t pick = n;
    for (std::size_t i = 0; i < n; ++i) {
      auto idx = (next + i) % n;
      auto& x = nodes[idx];
      if (!x.status.up)
        continue;
      if (pick == n) {
        pick = idx;
        if (cfg.policy == backend_policy::round_robin)
          break;
      } else if (x.status.connections < nodes[pick].status.connections) {
        pick = idx;
      }
    }
    if (pick == n) {
      std::string why = "no back end is up";
      for (auto& x : nodes) {
        why += "; " + x.status.endpoint.to_string();
        if (!x.status.last_error.empty())
          why += ": " + x.status.last_error;
      }
      return make_error(errc::backend_down, std::move(why));
    }
    next = (pick + 1) % n;
    auto& x = nodes[pick];
    ++x.status.connections;
    ++x.status.assigned;
    return lease{pick, x.handle, x.status.endpoint.to_string()};
  }

  void release(std::size_t idx) {
    std::lock_guard<std::mutex> guard{mtx};
    if (nodes[idx].status.connections > 0)
      --nodes[idx].status.connections;
  }

  std::size_t up_locked() const {
    return static_cast<std::size_t>(std::count_if(
        nodes.begin(), nodes.end(), [](const node& x) { return x.status.up; }));
  }
};

namespace {

using impl_ptr = std::shared_ptr<backend_pool::impl>;

/// Links to each node through the middleman (the TLS one if loaded),
/// watches the links and relinks lost nodes with capped backoff.
caf::behavior linker(caf::event_based_actor* self, impl_ptr st) {
  auto& sys = self->system();
  auto mm = sys.has_openssl_manager() ? sys.openssl_manager().actor_handle()
                                      : sys.middleman().actor_handle();
  auto expected_ifs =
      sys.message_types(caf::detail::type_list<backend_actor>{});
  auto schedule = [self, st](std::size_t idx) {
    std::chrono::milliseconds wait;
    {
      std::lock_guard<std::mutex> guard{st->mtx};
      auto& x = st->nodes[idx];
      auto shift = std::min<std::size_t>(x.attempts, 20);
      wait = std::min(st->cfg.initial_backoff * (int64_t{1} << shift),
                      st->cfg.max_backoff);
      ++x.attempts;
    }
    self->delayed_send(self, wait, retry_atom::value, idx);
  };
  auto failed = [self, st, schedule](std::size_t idx, const std::string& why) {
    std::string name;
    bool was_up;
    bool repeat;
    {
      std::lock_guard<std::mutex> guard{st->mtx};
      auto& x = st->nodes[idx];
      was_up = x.status.up;
      name = x.status.endpoint.to_string();
      repeat = !was_up && x.status.last_error == why;
      x.status.up = false;
      x.handle = nullptr;
      ++x.status.failures;
      x.status.last_error = why;
    }
    st->changed.notify_all();
    // Log a node's trouble once, not at every retry.
    if (!repeat)
      warn(was_up ? "backend_down" : "backend_unreachable",
           "backend " + name + (was_up ? " down: " : " unreachable: ") + why +
               "; retrying with backoff");
    schedule(idx);
  };
  auto connect = [self, st, mm, expected_ifs, failed](std::size_t idx) {
    backend_endpoint ep;
    {
      std::lock_guard<std::mutex> guard{st->mtx};
      ep = st->nodes[idx].status.endpoint;
    }
    self->request(mm, st->cfg.connect_timeout, caf::connect_atom::value,
                  ep.host, ep.port)
        .then(
            [self, st, idx, ep, expected_ifs,
             failed](const caf::node_id&, caf::strong_actor_ptr& ptr,
                     const std::set<std::string>& ifs) {
              if (!ptr)
                return failed(idx, "no actor published on that port");
              if (!std::includes(ifs.begin(), ifs.end(), expected_ifs.begin(),
                                 expected_ifs.end()))
                return failed(idx, "the published actor is no "
                                   "tcpactor::backend_actor");
              auto handle = caf::actor_cast<backend_actor>(std::move(ptr));
              self->monitor(handle);
              {
                std::lock_guard<std::mutex> guard{st->mtx};
                auto& x = st->nodes[idx];
                x.status.up = true;
                x.handle = handle;
                x.attempts = 0;
              }
              st->changed.notify_all();
              info("backend_up", "backend " + ep.to_string() + " up");
            },
            [idx, failed](caf::error& err) { failed(idx, describe(err)); });
  };
  self->set_down_handler([st, failed](caf::down_msg& dm) {
    std::size_t idx = st->nodes.size();
    {
      std::lock_guard<std::mutex> guard{st->mtx};
      for (std::size_t i = 0; i < st->nodes.size(); ++i)
        if (st->nodes[i].handle && st->nodes[i].handle.address() == dm.source)
          idx = i;
    }
    if (idx < st->nodes.size())
      failed(idx, "link lost (" + describe(dm.reason) + ")");
  });
  for (std::size_t i = 0; i < st->nodes.size(); ++i)
    connect(i);
  return {
      [connect](retry_atom, std::size_t idx) { connect(idx); },
  };
}

/// The behavior of one forwarded connection.
service forward(caf::event_based_actor* self, const caller& conn,
                backend_actor be, std::string name,
                std::chrono::milliseconds timeout) {
  // The proxy dies when the node does or its link drops: fail at once, also
  // a connection that waits for nothing.
  self->monitor(be);
  // Weak: the handler lives as long as the actor object, and a caller in
  // it would keep the transport (and through it the actor) alive.
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(conn.transport());
  self->set_down_handler([weak, name, addr = be.address()](caf::down_msg& dm) {
    if (dm.source != addr)
      return;
    if (auto tr = caf::actor_cast<caf::strong_actor_ptr>(weak))
      fail_connection(
          caller{std::move(tr)},
          make_error(errc::backend_down,
                     name + ": link lost (" + describe(dm.reason) + ")"));
  });
  return {
      [self, be, conn, name,
       timeout](bytes& chunk) -> caf::typed_response_promise<bytes> {
        // The chunk stays unanswered until the node replies, so the
        // connection's unanswered-chunk limit paces it to its node. One
        // node answers one sender in order over one link, so the replies
        // come back in the order of the chunks.
        auto rp = self->make_response_promise<bytes>();
        self->request(be, timeout, std::move(chunk))
            .then([rp](bytes& reply) mutable { rp.deliver(std::move(reply)); },
                  [rp, conn, name, timeout](caf::error& err) mutable {
                    auto why = err == caf::sec::request_timeout
                                   ? "no reply within " +
                                         std::to_string(timeout.count()) + "ms"
                                   : describe(err);
                    fail_connection(conn, make_error(errc::backend_down,
                                                     name + ": " + why));
                    // Nothing to write; the connection is closing.
                    rp.deliver(bytes{});
                  });
        return rp;
      },
      [](error_atom, const caf::error&) {},
      [](closed_atom) {},
  };
}

} // namespace

caf::expected<backend_pool> backend_pool::make(caf::actor_system& sys,
                                               backend_pool_config cfg) {
  if (auto err = cfg.validate())
    return err;
  if (!sys.has_middleman())
    return make_error(errc::invalid_config,
                      "backend_pool: the actor system has no middleman "
                      "(call configure_node before creating it)");
  auto st = std::make_shared<impl>();
  for (auto& ep : cfg.backends) {
    impl::node x;
    x.status.endpoint = ep;
    st->nodes.push_back(std::move(x));
  }
  st->cfg = std::move(cfg);
  // Hidden: ~actor_system does not wait for it; ~backend_pool stops it.
  st->linker = sys.spawn<caf::hidden>(linker, st);
  return backend_pool{std::move(st)};
}

backend_pool::backend_pool(std::shared_ptr<impl> ptr) : impl_(std::move(ptr)) {
  // nop
}

backend_pool::backend_pool(backend_pool&&) noexcept = default;

backend_pool& backend_pool::operator=(backend_pool&&) noexcept = default;

backend_pool::~backend_pool() {
  if (impl_ && impl_->linker) {
    // The linker's behavior holds `impl_`; its exit breaks the cycle.
    caf::anon_send_exit(impl_->linker, caf::exit_reason::user_shutdown);
    impl_->linker = nullptr;
  }
}

connect_handler backend_pool::handler() const {
  return [st = impl_](caf::event_based_actor* self,
                      const caller& conn) -> caf::expected<service> {
    auto lease = st->acquire();
    if (!lease)
      return lease.error();
    auto idx = lease->index;
    self->attach_functor([st, idx] { st->release(idx); });
    return forward(self, conn, std::move(lease->handle), std::move(lease->name),
                   st->cfg.request_timeout);
  };
}

std::size_t
backend_pool::wait_until_up(std::size_t n,
                            std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> guard{impl_->mtx};
  impl_->changed.wait_for(guard, timeout,
                          [&] { return impl_->up_locked() >= n; });
  return impl_->up_locked();
}

std::vector<backend_status> backend_pool::status() const {
  std::vector<backend_status> result;
  std::lock_guard<std::mutex> guard{impl_->mtx};
  for (auto& x : impl_->nodes)
    result.push_back(x.status);
  return result;
}

} // namespace tcpactor
