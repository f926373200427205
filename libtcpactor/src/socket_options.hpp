#pragma once

namespace tcpactor {

struct connection_config;

/// The kernel buffer sizes of `cfg` on socket `fd`: on a listening socket
/// before listen() (accepted sockets inherit them and the window scale fits
/// them), on a client socket before connect().
void apply_buffer_options(int fd, const connection_config& cfg) noexcept;

/// The per-connection options of `cfg` on a connected socket: Nagle,
/// keepalive, TCP_USER_TIMEOUT. Failures only cost what the option would
/// have bought; the values were validated before.
void apply_connection_options(int fd, const connection_config& cfg) noexcept;

} // namespace tcpactor
