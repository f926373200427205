// The framing path: chunks -> frames on the way up, payloads -> frames on
// the way down. The codecs themselves are in frame_codec.cpp.

#include "framing_layer.hpp"

#include "socket_manager.hpp"

namespace tcpactor {

framing_layer::framing_layer(socket_manager& mgr, const framing_config& cfg)
    : mgr_(mgr), up_(&mgr.bridge_), decoder_(cfg) {
  // nop
}

bool framing_layer::consume(bytes chunk, std::size_t) {
  // The chunk itself is released here: what the decoder keeps is copied.
  decoder_.feed(chunk.data(), chunk.size());
  return deliver();
}

bool framing_layer::resume() {
  return deliver();
}

bool framing_layer::deliver() {
  bytes frame;
  while (decoder_.next(frame)) {
    auto size = frame.size();
    if (up_->consume(std::move(frame), size))
      return true;
  }
  if (auto& err = decoder_.error(); err && !failed_) {
    failed_ = true;
    // Read no further: what came before the bad frame is delivered, its
    // replies go out, then the connection closes with the reason.
    mgr_.stream_.reading_ = false;
    up_->end_of_stream(err);
  }
  return false;
}

void framing_layer::end_of_stream(caf::error reason) {
  if (failed_)
    return; // told the bridge already
  // A frame cut short says more than a TLS truncation: it names the frame.
  if (auto err = decoder_.at_eof())
    reason = std::move(err);
  up_->end_of_stream(std::move(reason));
}

caf::error framing_layer::encode(const bytes& payload, pieces& out) const {
  return encode_frame(decoder_.config(), payload, out);
}

} // namespace tcpactor
