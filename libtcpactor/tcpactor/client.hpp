#pragma once

#include <chrono>
#include <memory>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "tcpactor/bytes.hpp"
#include "tcpactor/config.hpp"
#include "tcpactor/fwd.hpp"

namespace tcpactor {

/// Handle to an outbound connection. It takes `(write_atom, bytes)` (as a
/// request: answered once the bytes reached the kernel) and `(close_atom)`.
/// Its owner receives, with this handle as sender:
/// - `(connected_atom)` once connected;
/// - `bytes` per chunk read, as a request: the reply is written back (reply
///   with empty bytes to write nothing); reading pauses while too many
///   chunks are unanswered;
/// - at most one `(error_atom, caf::error)`, e.g. connect_timeout;
/// - `(closed_atom)` exactly once, always last.
using client_actor = caf::typed_actor<caf::reacts_to<write_atom, bytes>,
                                      caf::reacts_to<close_atom>,
                                      caf::reacts_to<shutdown_write_atom>>;

/// Validates `cfg` and starts a non-blocking resolve and connect; events go
/// to `owner`.
caf::expected<client_actor> spawn_client(runtime& rt, client_config cfg,
                                         caf::actor owner);

/// What the TLS handshake of a connected client agreed on (protocol,
/// cipher, ALPN, the server's verified subject); empty for plain TCP or
/// before `connected`.
const tls_info& tls_info_of(const client_actor& hdl);

/// A client for plain, blocking code. Use one from one thread at a time.
class blocking_client {
public:
  /// Connects within `cfg.connect_timeout`, or returns why not.
  static caf::expected<blocking_client> connect(runtime& rt, client_config cfg);

  blocking_client(blocking_client&&) noexcept;
  blocking_client& operator=(blocking_client&&) noexcept;
  ~blocking_client();

  /// Returns once `data` is handed to the kernel. After `write_timeout` the
  /// connection is closed and `errc::write_timeout` returned.
  caf::error write_bytes(const bytes& data);

  /// Returns the next chunk as read. After `read_timeout` (or `timeout`)
  /// returns `errc::read_timeout` and the connection stays usable. Once the
  /// peer closed, chunks read before are returned first, then
  /// `errc::peer_closed`.
  caf::expected<bytes> read_bytes();
  caf::expected<bytes> read_bytes(std::chrono::milliseconds timeout);

  /// With a codec (`cfg.connection.framing`): the next whole frame, which
  /// may be empty, with `read_bytes`' timeout and end rules. A frame the
  /// peer sent broken (too large, cut short) ends the connection and is
  /// returned as that error (`errc::frame_too_large`, `frame_truncated`)
  /// after the frames before it. Without a codec: `errc::invalid_config`.
  /// `write_bytes` frames what it writes whenever a codec is set.
  caf::expected<bytes> read_frame();
  caf::expected<bytes> read_frame(std::chrono::milliseconds timeout);

  /// Flushes what was written, then ends our side (FIN); reading goes on
  /// until the peer closes (`errc::peer_closed`).
  caf::error shutdown_write();

  /// Closes the connection. Idempotent; any later call returns
  /// `errc::closed`.
  caf::error close();

  /// The client actor underneath.
  client_actor handle() const;

  /// What the TLS handshake agreed on; empty for plain TCP.
  const tls_info& tls() const;

private:
  struct impl;
  explicit blocking_client(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

} // namespace tcpactor
