#include "unix_socket.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "socket_options.hpp"
#include "tcpactor/errors.hpp"
#include "tcpactor/log.hpp"

namespace tcpactor {

unix_address::unix_address(const std::string& path) {
  std::memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  auto base = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path));
  if (!path.empty() && path.front() == '@') {
    // Abstract: a leading NUL and the name's bytes, no terminator; the
    // length says where the name ends.
    std::memcpy(sa.sun_path + 1, path.data() + 1, path.size() - 1);
    len = base + static_cast<socklen_t>(path.size());
  } else {
    std::memcpy(sa.sun_path, path.data(), path.size());
    len = base + static_cast<socklen_t>(path.size() + 1);
  }
}

std::string unix_name(const sockaddr_un& sa, socklen_t len) {
  auto base = offsetof(sockaddr_un, sun_path);
  if (len <= base)
    return {};
  auto n = std::min<std::size_t>(len - base, sizeof(sa.sun_path));
  if (sa.sun_path[0] == '\0')
    return "@" + std::string(sa.sun_path + 1, n - 1);
  return std::string(sa.sun_path, strnlen(sa.sun_path, n));
}

namespace {

caf::error fail(const std::string& path, const std::string& what) {
  return make_error(errc::bind_failed,
                    "listener.unix_path '" + path + "': " + what);
}

std::string os_text(int err) {
  return std::strerror(err);
}

/// Is another process accepting on the socket file at `addr`? Returns the
/// connect's errno (0: someone accepted).
int probe(const unix_address& addr) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return errno;
  int rc;
  do
    rc = ::connect(fd, addr.data(), addr.len);
  while (rc != 0 && errno == EINTR);
  int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

/// Removes a stale socket file at `path`, or says why not.
caf::error clear_stale(const std::string& path, const unix_address& addr) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return caf::none;
    return fail(path, os_text(errno));
  }
  if (!S_ISSOCK(st.st_mode))
    return fail(path, "exists and is not a socket; it was left untouched");
  auto err = probe(addr);
  // EAGAIN: a live listener whose backlog is full.
  if (err == 0 || err == EAGAIN)
    return fail(path, "address in use: another process listens on it");
  if (err != ECONNREFUSED)
    return fail(path, "cannot tell whether the socket file is in use: " +
                          os_text(err));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return fail(path, "stale socket file cannot be removed: " + os_text(errno));
  if (log::enabled(log::level::info))
    log::write(log::level::info, "stale_socket_removed",
               "removed stale socket file " + path);
  return caf::none;
}

} // namespace

caf::expected<unix_listen_socket> listen_unix(const std::string& path,
                                              uint32_t mode, int backlog,
                                              const connection_config& cfg) {
  unix_address addr{path};
  bool file = path.front() != '@';
  if (file)
    if (auto err = clear_stale(path, addr))
      return err;
  unix_listen_socket result;
  result.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (result.fd < 0)
    return fail(path, os_text(errno));
  auto give_up = [&](const std::string& what, bool bound) -> caf::error {
    ::close(result.fd);
    if (bound && file)
      ::unlink(path.c_str());
    return fail(path, what);
  };
  apply_buffer_options(result.fd, cfg);
  if (::bind(result.fd, addr.data(), addr.len) != 0) {
    auto err = errno;
    // A file bound between our probe and bind, or an abstract name in use.
    if (err == EADDRINUSE)
      return give_up("address in use", false);
    return give_up(os_text(err), false);
  }
  if (file) {
    // Before listen(): until then a connect is refused, so no client ever
    // gets in under the umask's wider permissions.
    if (mode != 0 && ::chmod(path.c_str(), mode) != 0) {
      char octal[16];
      std::snprintf(octal, sizeof(octal), "%04o", static_cast<unsigned>(mode));
      return give_up(std::string{"unix_mode "} + octal + ": " + os_text(errno),
                     true);
    }
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) {
      result.dev = st.st_dev;
      result.ino = st.st_ino;
      result.has_file = true;
    }
  }
  if (::listen(result.fd, backlog) != 0)
    return give_up(os_text(errno), true);
  return result;
}

void remove_unix_file(const std::string& path, const unix_listen_socket& sock) {
  if (!sock.has_file)
    return;
  struct stat st;
  // Another listener may have replaced a file we left (e.g. after a crash
  // of ours it found it stale): that one is not ours to remove.
  if (::lstat(path.c_str(), &st) == 0 && st.st_dev == sock.dev &&
      st.st_ino == sock.ino)
    ::unlink(path.c_str());
}

} // namespace tcpactor
