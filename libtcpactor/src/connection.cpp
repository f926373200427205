// The handler side of a connection: the actor that runs the user's service.

#include "tcpactor/connection.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/message_view.hpp>

#include "connection_impl.hpp"
#include "tcpactor/errors.hpp"
#include "transport.hpp"

namespace tcpactor {

service echo_service(caller conn) {
  return {
      [conn](const bytes& in) {
        if (in.empty() && conn)
          conn.close(); // nothing follows the peer's end
        return in;
      },
      [](error_atom, const caf::error&) {},
      [](closed_atom) {},
  };
}

caf::actor spawn_connection(caf::actor_system& sys, caf::strong_actor_ptr tr,
                            std::shared_ptr<const connect_handler> on_connect,
                            std::function<void(const caf::error&)> on_reject) {
  // `tr` travels as a spawn argument, not a capture: CAF 0.17 dereferences a
  // null argument tuple when a function actor is spawned without arguments,
  // which UBSan (TCPACTOR_ASAN) aborts on.
  auto init = [on_connect,
               on_reject](caf::event_based_actor* self,
                          caf::strong_actor_ptr tr) -> caf::behavior {
    auto t = transport::from(tr);
    caf::expected<service> svc = caf::error{};
    try {
      svc = (*on_connect)(self, caller{tr});
    } catch (const std::exception& e) {
      svc = make_error(errc::rejected,
                       t->peer() + ": connect handler threw: " + e.what());
    }
    if (!svc) {
      auto err = is_tcpactor_error(svc.error())
                     ? svc.error()
                     : make_error(errc::rejected,
                                  t->peer() + ": " + describe(svc.error()));
      // Count first, close second: a peer that sees the close may already
      // ask the listener for its stats.
      on_reject(err);
      t->reject(err);
      return {};
    }
    // Runtime messages live in the default handler, so they keep working
    // after the service calls become().
    self->set_default_handler(
        [tr](caf::scheduled_actor* ptr,
             caf::message_view& x) -> caf::result<caf::message> {
          auto& xs = x.content();
          auto t = transport::from(tr);
          if (xs.match_elements<write_atom, bytes>()) {
            t->write(xs.get_as<bytes>(1));
            return caf::message{};
          }
          if (xs.match_elements<close_atom>()) {
            t->close();
            return caf::message{};
          }
          if (xs.match_elements<shutdown_write_atom>()) {
            t->shutdown_write();
            return caf::message{};
          }
          if (xs.match_elements<drain_atom>()) {
            // Services are typed, so the notice reaches them through the
            // hook they set with caller::on_drain, in this actor.
            t->run_on_drain();
            return caf::message{};
          }
          if (xs.match_elements<quit_atom>()) {
            ptr->quit();
            return caf::message{};
          }
          return caf::sec::unexpected_message;
        });
    // If the actor dies early (a throw, a kill), its connection closes.
    self->attach_functor([tr](const caf::error& reason) {
      // A drain hook capturing its caller would keep the transport alive.
      transport::from(tr)->clear_on_drain();
      transport::from(tr)->target_down(reason);
    });
    t->start(caf::actor_cast<caf::strong_actor_ptr>(self));
    return std::move(svc->unbox());
  };
  return sys.spawn(init, std::move(tr));
}

} // namespace tcpactor
