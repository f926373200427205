// The handler side of a connection: the actor that runs the user's service.

#include "tcpactor/connection.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/message_view.hpp>

#include "connection_impl.hpp"
#include "socket_manager.hpp"
#include "tcpactor/errors.hpp"

namespace tcpactor {

service echo_service(caller conn) {
  // Only a half-closing connection ever sees the empty chunk, and only a
  // framing one an empty frame, so only they need their caller. The others
  // share one behavior: CAF counts references to it and its handlers only
  // read, and a behavior of their own would cost each idle connection 152
  // bytes.
  auto* mgr = conn ? socket_manager::from(conn.transport()) : nullptr;
  if (mgr && mgr->config().half_close) {
    return {
        [conn](const bytes& in) {
          if (in.empty())
            conn.close(); // nothing follows the peer's end
          return in;
        },
        [](error_atom, const caf::error&) {},
        [](closed_atom) {},
    };
  }
  if (mgr && mgr->config().framing.type != framing_config::codec::raw) {
    return {
        [conn](const bytes& in) {
          // An empty reply writes nothing; an empty frame is echoed all the
          // same, in order, since replies and writes share one queue.
          if (in.empty())
            conn.write(in);
          return in;
        },
        [](error_atom, const caf::error&) {},
        [](closed_atom) {},
    };
  }
  static const service shared{
      [](const bytes& in) { return in; },
      [](error_atom, const caf::error&) {},
      [](closed_atom) {},
  };
  return shared;
}

namespace {

/// The actor of one accepted connection. A class rather than a function
/// actor so that the transport is a member: the runtime's default handler
/// needs no capture (a capturing std::function allocates) and the actor's
/// end reaches the transport through cleanup(), not an attachable. Each
/// would cost an idle connection a 32-byte heap block.
class connection_worker final : public caf::event_based_actor {
public:
  struct setup {
    std::shared_ptr<const connect_handler> on_connect;
    std::function<void(const caf::error&)> on_reject;
  };

  connection_worker(caf::actor_config& cfg, caf::strong_actor_ptr tr,
                    std::unique_ptr<setup> init)
      : caf::event_based_actor(cfg), tr_(std::move(tr)) {
    // CAF's slot for a function actor's body, which make_behavior() runs
    // once and clears: the setup is gone before the connection idles, and a
    // member for it would cost every connection 8 bytes.
    using init_fn =
        caf::detail::unique_function<caf::behavior(caf::local_actor*)>;
    initial_behavior_fac_ =
        init_fn{[init = std::move(init)](caf::local_actor* self) {
          return static_cast<connection_worker*>(self)->begin(init.get());
        }};
  }

  bool cleanup(caf::error&& reason, caf::execution_unit* host) override {
    auto why = reason;
    if (!caf::event_based_actor::cleanup(std::move(reason), host))
      return false;
    // If the actor dies early (a throw, a kill), its connection closes. A
    // drain hook capturing its caller would keep the transport alive. After
    // a rejection this comes too late to matter: reject() already queued the
    // close on the loop.
    auto t = socket_manager::from(tr_);
    t->clear_on_drain();
    t->target_down(why);
    return true;
  }

private:
  caf::behavior begin(const setup* init) {
    auto t = socket_manager::from(tr_);
    caf::expected<service> svc = caf::error{};
    try {
      svc = (*init->on_connect)(this, caller{tr_});
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
      init->on_reject(err);
      t->reject(err);
      return {};
    }
    // Runtime messages live in the default handler, so they keep working
    // after the service calls become().
    set_default_handler(runtime_message);
    t->start(caf::actor_cast<caf::strong_actor_ptr>(this));
    return std::move(svc->unbox());
  }

  static caf::result<caf::message> runtime_message(caf::scheduled_actor* ptr,
                                                   caf::message_view& x) {
    auto self = static_cast<connection_worker*>(ptr);
    auto& xs = x.content();
    auto t = socket_manager::from(self->tr_);
    // Commands take the socket manager's one path: a request is answered
    // there, as for a caller or a client handle (a write once its bytes
    // reached the kernel, or with the reason it was refused).
    auto run = [&](command cmd,
                   const bytes& data) -> caf::result<caf::message> {
      auto* elem = self->current_mailbox_element();
      if (elem != nullptr && elem->mid.is_request()) {
        t->execute(cmd, data, elem->sender, elem->mid);
        return caf::delegated<caf::message>{};
      }
      t->execute(cmd, data);
      return caf::message{};
    };
    if (xs.match_elements<write_atom, bytes>())
      return run(command::write, xs.get_as<bytes>(1));
    if (xs.match_elements<close_atom>())
      return run(command::close, {});
    if (xs.match_elements<shutdown_write_atom>())
      return run(command::shutdown_write, {});
    if (xs.match_elements<drain_atom>()) {
      // Services are typed, so the notice reaches them through the hook
      // they set with caller::on_drain, in this actor.
      t->run_on_drain();
      return caf::message{};
    }
    if (xs.match_elements<quit_atom>()) {
      self->quit();
      return caf::message{};
    }
    return caf::sec::unexpected_message;
  }

  caf::strong_actor_ptr tr_;
};

} // namespace

void spawn_connection(caf::actor_system& sys, caf::strong_actor_ptr tr,
                      std::shared_ptr<const connect_handler> on_connect,
                      std::function<void(const caf::error&)> on_reject) {
  // With handlers on the I/O thread the actor starts there too: the
  // connect handler runs on the loop that owns the socket, instead of
  // waking a scheduler thread that then wakes the loop to start reading.
  caf::actor_config cfg{socket_manager::from(tr)->unit()};
  sys.spawn_class<connection_worker, caf::no_spawn_options>(
      cfg, std::move(tr),
      std::make_unique<connection_worker::setup>(connection_worker::setup{
          std::move(on_connect), std::move(on_reject)}));
}

void fail_connection(const caller& conn, caf::error reason) {
  if (conn)
    socket_manager::from(conn.transport())->abort(std::move(reason));
}

} // namespace tcpactor
