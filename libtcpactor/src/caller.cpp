#include "tcpactor/caller.hpp"

#include "socket_manager.hpp"

namespace tcpactor {

connection_id caller::id() const noexcept {
  return ptr_ ? socket_manager::from(ptr_)->conn_id() : 0;
}

std::string caller::remote_host() const {
  return ptr_ ? socket_manager::from(ptr_)->remote_host() : std::string{};
}

uint16_t caller::remote_port() const noexcept {
  return ptr_ ? socket_manager::from(ptr_)->remote_port() : 0;
}

std::string caller::local_host() const {
  return ptr_ ? socket_manager::from(ptr_)->local_host() : std::string{};
}

uint16_t caller::local_port() const noexcept {
  return ptr_ ? socket_manager::from(ptr_)->local_port() : 0;
}

std::optional<peer_credentials> caller::peer_credentials() const {
  if (!ptr_)
    return std::nullopt;
  return socket_manager::from(ptr_)->credentials();
}

const tls_info& caller::tls() const noexcept {
  static const tls_info plain;
  return ptr_ ? socket_manager::from(ptr_)->tls() : plain;
}

bool caller::write(bytes data) const {
  return ptr_ ? socket_manager::from(ptr_)->execute(command::write, data)
              : false;
}

void caller::close() const {
  if (ptr_)
    socket_manager::from(ptr_)->execute(command::close);
}

void caller::shutdown_write() const {
  if (ptr_)
    socket_manager::from(ptr_)->execute(command::shutdown_write);
}

bool caller::draining() const noexcept {
  return ptr_ && socket_manager::from(ptr_)->draining();
}

void caller::on_drain(std::function<void()> fn) const {
  if (ptr_)
    socket_manager::from(ptr_)->set_on_drain(std::move(fn));
}

} // namespace tcpactor
