#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "proxy_header.hpp"
#include "tcpactor/config.hpp"

namespace tcpactor {

class socket_manager;

/// Reads a PROXY protocol header off an accepted socket, before anything
/// else (TLS included) sees a byte, and makes the header's addresses the
/// connection's. Bytes that arrived behind the header in the same reads are
/// kept for the next layer (`socket_manager::take_early_input`): the TLS
/// handshake or the first chunk.
///
/// Lives only while the header arrives, held by its own pending handlers, so
/// a connection past that phase pays nothing for it. Loop only; the socket
/// manager is in state `handshaking` meanwhile, and its timer is the
/// header's deadline.
class proxy_reader : public std::enable_shared_from_this<proxy_reader> {
public:
  proxy_reader(socket_manager& mgr, proxy::accept which,
               std::function<void()> done) noexcept;

  /// Loop: starts the deadline and the first read. `done` runs on the loop
  /// once the header is accepted; on any failure the connection finishes
  /// with `proxy_header_invalid` or `proxy_header_timeout` instead.
  static void start(socket_manager& mgr, tcpactor::proxy_protocol which,
                    std::chrono::milliseconds timeout,
                    std::function<void()> done);

private:
  void arm();
  /// Reads what the socket has and parses; finishes or re-arms.
  void on_readable();
  void fail(std::string why);
  void accept_header(const proxy::header& h, std::size_t consumed);

  socket_manager& mgr_;
  proxy::accept which_;
  bool over_ = false; // done or failed: a late timer must not fire
  std::size_t size_ = 0;
  std::function<void()> done_;
  uint8_t buf_[proxy::max_size];
};

} // namespace tcpactor
