#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "layer.hpp"
#include "ring.hpp"

namespace tcpactor {

class socket_manager;

/// The top layer: each chunk (or frame) becomes one `bytes` request to the
/// target actor (the connection actor, or a client's owner), whose reply
/// comes back to the socket manager's `enqueue` and goes down as a write.
/// Counts what the actor has not answered yet, for flow control, and holds
/// back the close after the peer's end until every earlier request is
/// answered, so no reply is lost.
class actor_bridge final : public upper_layer {
public:
  explicit actor_bridge(socket_manager& mgr) noexcept : mgr_(mgr) {
    // nop
  }

  // -- upper_layer (loop) -----------------------------------------------------

  bool consume(bytes chunk, std::size_t held) override;
  bool resume() override { return false; }
  void end_of_stream(caf::error reason) override;

  // -- any thread -------------------------------------------------------------

  /// The target answered request `id` (or failed it).
  void request_done(uint64_t id);

  /// Unprocessed requests and the memory they keep. Require the mutex.
  std::size_t pending_locked() const noexcept { return pending_.size(); }
  std::size_t pending_bytes_locked() const noexcept { return pending_bytes_; }

  /// Forgets every request: the connection is gone. Requires the mutex.
  void clear_locked() noexcept;

private:
  socket_manager& mgr_;
  uint64_t last_request_ = 0; // loop
  // Guarded by the mutex.
  bool eof_pending_ = false; // the stream ended; close once replies are done
  ring<std::pair<uint64_t, std::size_t>> pending_; // request -> held bytes
  std::size_t pending_bytes_ = 0;
};

} // namespace tcpactor
