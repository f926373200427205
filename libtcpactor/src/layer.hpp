#pragma once

#include <cstddef>

#include <caf/error.hpp>

#include "tcpactor/bytes.hpp"

namespace tcpactor {

// The interfaces between the layers of one connection, after CAF 1.x's
// `caf::net` (stream_oriented::lower_layer / upper_layer):
//
//   connection actor (or a client's owner)
//        ^ bytes (requests)          | replies, write, close, shutdown
//   actor_bridge      upper layer: one message per chunk or frame
//   framing_layer     optional: chunks -> frames, payloads -> frames
//   tls_transport     optional: ciphertext <-> plaintext
//   stream_transport  the socket: reads, write queue, flow control
//   socket_manager    the actor, the socket's lifecycle, deadlines
//
// Data goes up through `upper_layer::consume` on the socket's I/O loop, and
// down through `lower_layer::send_locked` on whichever thread writes, under
// the socket manager's mutex.

/// What a layer asks of the layer above it: takes what was read.
class upper_layer {
public:
  virtual ~upper_layer() = default;

  /// I/O loop: `chunk` arrived; it keeps `held` bytes of memory allocated
  /// (for flow control). Returns true if reading must pause now: whoever
  /// brings the counters back down resumes it.
  virtual bool consume(bytes chunk, std::size_t held) = 0;

  /// I/O loop: before reading more after a pause, hands up what this layer
  /// still holds (a codec's buffered frames). Returns true if reading must
  /// stay paused.
  virtual bool resume() = 0;

  /// I/O loop: the stream from the peer ended: cleanly (FIN or
  /// close_notify) if `reason` is empty, else why it was cut short.
  virtual void end_of_stream(caf::error reason) = 0;
};

/// What a layer offers the layer above it: takes what is to be written.
class lower_layer {
public:
  virtual ~lower_layer() = default;

  /// Queues `data` behind everything queued before and sends it when it can.
  /// Requires the socket manager's mutex. False if the layer failed (e.g.
  /// encryption): the connection must be aborted.
  virtual bool send_locked(const bytes& data) = 0;

  /// Says that nothing follows (TLS: close_notify); the FIN is the stream's.
  /// Requires the socket manager's mutex.
  virtual void end_locked() = 0;

  /// I/O loop: reads what the socket has and hands it up.
  virtual void read_some() = 0;
};

} // namespace tcpactor
