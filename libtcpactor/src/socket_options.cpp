// Socket options from connection_config, in one place for accepted and
// outbound sockets.

#include "socket_options.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "tcpactor/config.hpp"

namespace tcpactor {

namespace {

void set(int fd, int level, int name, int value) noexcept {
  ::setsockopt(fd, level, name, &value, sizeof(value));
}

} // namespace

void apply_buffer_options(int fd, const connection_config& cfg) noexcept {
  if (cfg.receive_buffer > 0)
    set(fd, SOL_SOCKET, SO_RCVBUF, static_cast<int>(cfg.receive_buffer));
  if (cfg.send_buffer > 0)
    set(fd, SOL_SOCKET, SO_SNDBUF, static_cast<int>(cfg.send_buffer));
}

void apply_connection_options(int fd, const connection_config& cfg) noexcept {
  if (cfg.tcp_nodelay)
    set(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  if (cfg.keepalive) {
    set(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    if (cfg.keepalive_idle.count() > 0)
      set(fd, IPPROTO_TCP, TCP_KEEPIDLE,
          static_cast<int>(cfg.keepalive_idle.count()));
    if (cfg.keepalive_interval.count() > 0)
      set(fd, IPPROTO_TCP, TCP_KEEPINTVL,
          static_cast<int>(cfg.keepalive_interval.count()));
    if (cfg.keepalive_count > 0)
      set(fd, IPPROTO_TCP, TCP_KEEPCNT, static_cast<int>(cfg.keepalive_count));
  }
  if (cfg.user_timeout.count() > 0)
    set(fd, IPPROTO_TCP, TCP_USER_TIMEOUT,
        static_cast<int>(cfg.user_timeout.count()));
}

} // namespace tcpactor
