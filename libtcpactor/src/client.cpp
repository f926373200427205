// Outbound connections: the client actor is the transport itself.

#include "tcpactor/client.hpp"

#include "runtime_impl.hpp"
#include "tcpactor/errors.hpp"
#include "transport.hpp"

namespace tcpactor {

caf::expected<client_actor> spawn_client(runtime& rt, client_config cfg,
                                         caf::actor owner) {
  if (auto err = cfg.validate())
    return err;
  if (!owner)
    return make_error(errc::invalid_config, "client: owner must be set");
  auto& impl = rt.internals();
  if (impl.stopping())
    return make_error(errc::shutdown, "runtime is shutting down");
  auto tr = transport::make(
      impl, impl.pool.next(),
      std::make_shared<const connection_config>(cfg.connection));
  auto t = transport::from(tr);
  t->set_target(caf::actor_cast<caf::strong_actor_ptr>(owner), false);
  t->connect(cfg);
  return caf::actor_cast<client_actor>(tr);
}

} // namespace tcpactor
