#pragma once

// Unix-domain stream sockets: addresses, the listening socket and its file.
// Private: sockaddr_un stays out of the public headers.

#include <cstdint>
#include <string>

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <caf/expected.hpp>

namespace tcpactor {

struct connection_config;

/// A socket address for `path`; a leading '@' makes it a Linux abstract
/// name. The path must have passed the config's validation (length, NUL).
struct unix_address {
  explicit unix_address(const std::string& path);
  const sockaddr* data() const noexcept {
    return reinterpret_cast<const sockaddr*>(&sa);
  }
  sockaddr_un sa;
  socklen_t len;
};

/// The name in `sa` as users write it: a path, "@name" for an abstract
/// socket, "" for an unnamed one.
std::string unix_name(const sockaddr_un& sa, socklen_t len);

/// A listening socket and the file it made, so that stopping removes that
/// file and not one that replaced it meanwhile.
struct unix_listen_socket {
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  bool has_file = false;
};

/// Binds `path` and listens. An existing socket file is probed first: if
/// nobody accepts on it (ECONNREFUSED) it is stale and replaced, if someone
/// does it is in use (`bind_failed`); a file that is no socket is never
/// removed. `mode` (if not 0) is applied before listen(), so no client can
/// connect under wider permissions. Errors name `listener.unix_path` and
/// the path.
caf::expected<unix_listen_socket> listen_unix(const std::string& path,
                                              uint32_t mode, int backlog,
                                              const connection_config& cfg);

/// Removes the socket file of `sock`, if it is still the one bound there.
void remove_unix_file(const std::string& path, const unix_listen_socket& sock);

} // namespace tcpactor
