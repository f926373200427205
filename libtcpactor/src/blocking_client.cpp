// The blocking client: a scoped actor owns a client actor and waits on its
// mailbox, which doubles as the receive queue (and so as flow control).

#include <caf/actor_system.hpp>
#include <caf/after.hpp>
#include <caf/scoped_actor.hpp>

#include "tcpactor/client.hpp"
#include "tcpactor/errors.hpp"
#include "tcpactor/runtime.hpp"

namespace tcpactor {

struct blocking_client::impl {
  impl(runtime& rt, client_config cfg)
      : self(rt.system()), cfg(std::move(cfg)) {
    // nop
  }

  caf::scoped_actor self;
  client_config cfg;
  client_actor client;
  std::string peer;
  bool closed = false;      // close() was called
  bool peer_closed = false; // `closed` arrived
  bool read_ended = false;  // half-close: the peer ended its side
  caf::error failure;       // the `error` that came before `closed`
};

caf::expected<blocking_client> blocking_client::connect(runtime& rt,
                                                        client_config cfg) {
  auto ptr = std::make_unique<impl>(rt, cfg);
  ptr->peer = cfg.unix_path.empty() ? cfg.host + ":" + std::to_string(cfg.port)
                                    : cfg.unix_path;
  auto hdl = spawn_client(rt, cfg, caf::actor_cast<caf::actor>(ptr->self));
  if (!hdl)
    return std::move(hdl.error());
  ptr->client = *hdl;
  caf::error err;
  bool done = false;
  // The transport enforces connect_timeout; the extra second only guards
  // against a lost message.
  auto bound = cfg.connect_timeout + std::chrono::seconds{1};
  if (cfg.tls.enabled)
    bound += cfg.tls.handshake_timeout;
  while (!done) {
    ptr->self->receive([&](connected_atom) { done = true; },
                       [&](error_atom, caf::error& e) { err = std::move(e); },
                       [&](closed_atom) {
                         if (!err)
                           err = make_error(errc::connect_failed, ptr->peer);
                         done = true;
                       },
                       caf::after(bound) >>
                           [&] {
                             err = make_error(errc::connect_timeout, ptr->peer);
                             done = true;
                           });
  }
  if (err) {
    caf::anon_send(ptr->client, close_atom::value);
    return err;
  }
  return blocking_client{std::move(ptr)};
}

blocking_client::blocking_client(std::unique_ptr<impl> ptr)
    : impl_(std::move(ptr)) {
  // nop
}

blocking_client::blocking_client(blocking_client&&) noexcept = default;

blocking_client& blocking_client::operator=(blocking_client&& other) noexcept {
  if (this != &other) {
    close();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

blocking_client::~blocking_client() {
  close();
}

client_actor blocking_client::handle() const {
  return impl_ ? impl_->client : client_actor{};
}

const tls_info& blocking_client::tls() const {
  return tls_info_of(handle());
}

caf::error blocking_client::write_bytes(const bytes& data) {
  if (!impl_ || impl_->closed)
    return make_error(errc::closed, "socket connection already closed");
  if (impl_->peer_closed)
    return impl_->failure ? impl_->failure
                          : make_error(errc::peer_closed, impl_->peer);
  caf::error err;
  impl_->self
      ->request(impl_->client, impl_->cfg.write_timeout, write_atom::value,
                data)
      .receive([] {},
               [&](caf::error& e) {
                 if (e == caf::sec::request_timeout) {
                   err = make_error(
                       errc::write_timeout,
                       impl_->peer + ": not written within " +
                           std::to_string(impl_->cfg.write_timeout.count()) +
                           "ms");
                   close();
                 } else {
                   err = std::move(e);
                 }
               });
  return err;
}

caf::expected<bytes> blocking_client::read_bytes() {
  if (!impl_)
    return make_error(errc::closed, "socket connection already closed");
  return read_bytes(impl_->cfg.read_timeout);
}

caf::expected<bytes>
blocking_client::read_bytes(std::chrono::milliseconds timeout) {
  if (!impl_ || impl_->closed)
    return make_error(errc::closed, "socket connection already closed");
  if (impl_->peer_closed || impl_->read_ended)
    return impl_->failure
               ? impl_->failure
               : make_error(errc::peer_closed,
                            impl_->peer + ": connection closed by peer");
  caf::expected<bytes> result = caf::error{};
  bool done = false;
  while (!done) {
    impl_->self->receive(
        [&](bytes& chunk) -> bytes {
          if (chunk.empty() && impl_->cfg.connection.half_close) {
            // Half-close: the peer is done sending; we may still write.
            impl_->read_ended = true;
            result = make_error(errc::peer_closed,
                                impl_->peer + ": peer ended its side");
          } else {
            result = std::move(chunk);
          }
          done = true;
          // Answering tells the transport this chunk left its budget.
          return {};
        },
        [&](error_atom, caf::error& e) { impl_->failure = std::move(e); },
        [&](closed_atom) {
          impl_->peer_closed = true;
          result =
              impl_->failure
                  ? impl_->failure
                  : make_error(errc::peer_closed,
                               impl_->peer + ": connection closed by peer");
          done = true;
        },
        caf::after(timeout) >>
            [&] {
              result = make_error(errc::read_timeout,
                                  impl_->peer + ": read timed out after " +
                                      std::to_string(timeout.count()) + "ms");
              done = true;
            });
  }
  return result;
}

caf::expected<bytes> blocking_client::read_frame() {
  if (!impl_)
    return make_error(errc::closed, "socket connection already closed");
  return read_frame(impl_->cfg.read_timeout);
}

caf::expected<bytes>
blocking_client::read_frame(std::chrono::milliseconds timeout) {
  if (impl_ && impl_->cfg.connection.framing.type == framing_config::codec::raw)
    return make_error(errc::invalid_config,
                      "client.connection.framing: read_frame needs a codec "
                      "(length, line, delimiter or exact); read_bytes reads "
                      "raw chunks");
  // Each message is one whole frame: the framing layer cut it.
  return read_bytes(timeout);
}

caf::error blocking_client::shutdown_write() {
  if (!impl_ || impl_->closed)
    return make_error(errc::closed, "socket connection already closed");
  if (impl_->peer_closed)
    return impl_->failure ? impl_->failure
                          : make_error(errc::peer_closed, impl_->peer);
  caf::anon_send(impl_->client, shutdown_write_atom::value);
  return caf::none;
}

caf::error blocking_client::close() {
  if (!impl_ || impl_->closed)
    return caf::none;
  impl_->closed = true;
  if (impl_->peer_closed)
    return caf::none;
  caf::anon_send(impl_->client, close_atom::value);
  // Wait for `closed` so the socket is gone when close() returns; chunks
  // still queued are answered (and dropped) on the way.
  auto bound = impl_->cfg.connection.close_timeout + std::chrono::seconds{1};
  bool done = false;
  while (!done) {
    impl_->self->receive([&](bytes&) -> bytes { return {}; },
                         [&](error_atom, caf::error&) {},
                         [&](closed_atom) { done = true; },
                         caf::after(bound) >> [&] { done = true; });
  }
  impl_->peer_closed = true;
  return caf::none;
}

} // namespace tcpactor
