// Outbound connections: the client actor is the transport itself.

#include "tcpactor/client.hpp"

#include "client_impl.hpp"
#include "runtime_impl.hpp"
#include "socket_manager.hpp"
#include "tcpactor/errors.hpp"
#include "tls_context.hpp"

namespace tcpactor {

caf::expected<client_actor> spawn_client(runtime& rt, client_config cfg,
                                         caf::actor owner) {
  return spawn_client_on(rt.internals(), std::move(cfg), std::move(owner));
}

caf::expected<client_actor>
spawn_client_on(runtime::impl& impl, client_config cfg, caf::actor owner) {
  if (auto err = cfg.validate())
    return err;
  if (!owner)
    return make_error(errc::invalid_config, "client: owner must be set");
  if (impl.stopping())
    return make_error(errc::shutdown, "runtime is shutting down");
  std::shared_ptr<tls_context> tls;
  if (cfg.tls.enabled) {
    auto ctx = impl.client_tls(cfg.tls);
    if (!ctx)
      return std::move(ctx.error());
    tls = std::move(*ctx);
  }
  auto tr = socket_manager::make(
      impl, impl.pool.next(),
      std::make_shared<const connection_config>(cfg.connection));
  auto t = socket_manager::from(tr);
  t->set_target(caf::actor_cast<caf::strong_actor_ptr>(owner), false);
  if (tls)
    t->use_tls(tls, tls->new_client(cfg.host, cfg.port),
               cfg.tls.handshake_timeout);
  t->connect(cfg);
  return caf::actor_cast<client_actor>(tr);
}

} // namespace tcpactor

namespace tcpactor {

const tls_info& tls_info_of(const client_actor& hdl) {
  static const tls_info none;
  if (!hdl)
    return none;
  return socket_manager::from(caf::actor_cast<caf::strong_actor_ptr>(hdl))
      ->tls();
}

} // namespace tcpactor
