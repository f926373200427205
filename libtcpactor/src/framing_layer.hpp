#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "frame_codec.hpp"
#include "layer.hpp"
#include "tcpactor/framing.hpp"

namespace tcpactor {

class socket_manager;

/// Messages instead of chunks: cuts what the stream (or TLS) reads into
/// whole frames for the bridge, and frames what goes down. Sits between the
/// lowest reader and the bridge only when `connection_config::framing`
/// names a codec.
///
/// Backpressure: each frame counts as one unanswered message of its size,
/// as a chunk does. While the bridge says pause, decoded-but-undelivered
/// input stays in the decoder and goes up first on resume, before the
/// socket is read again; so the decoder holds at most one read chunk plus
/// one partial frame.
///
/// Bad input (oversized frame, no delimiter within the limit) stops
/// reading: the frames before it are delivered and answered, then the
/// connection closes with the codec's error.
class framing_layer final : public upper_layer {
public:
  using pieces = std::vector<bytes>;

  framing_layer(socket_manager& mgr, const framing_config& cfg);

  /// Names the peer in the codec's errors.
  void set_peer(std::string peer) { decoder_.set_peer(std::move(peer)); }

  // -- upper_layer (loop) -----------------------------------------------------

  bool consume(bytes chunk, std::size_t held) override;
  bool resume() override;
  void end_of_stream(caf::error reason) override;

  // -- down (any thread, under the mutex) -------------------------------------

  /// Frames `payload` into `out` (one or two pieces, in wire order).
  caf::error encode(const bytes& payload, pieces& out) const;

private:
  /// Hands up the frames the decoder holds; true if the bridge says pause.
  bool deliver();

  socket_manager& mgr_;
  upper_layer* up_;
  frame_decoder decoder_;
  bool failed_ = false; // the decoder's error went up
};

} // namespace tcpactor
