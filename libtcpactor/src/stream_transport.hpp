#pragma once

#include <cstddef>
#include <cstdint>

#include "layer.hpp"
#include "ring.hpp"
#include "tcpactor/bytes.hpp"
#include "timeouts.hpp"

namespace tcpactor {

class socket_manager;

/// The socket itself, for plain TCP and under TLS: reads into the I/O
/// thread's buffer and hands chunks up; writes with a direct non-blocking
/// send on the writer's thread when nothing is queued, else queues for the
/// loop to flush when the socket is writable (writev of the queue); pauses
/// reading while the actor or the write queue is behind (flow control).
///
/// State marked "loop" belongs to the socket's I/O loop, the rest is guarded
/// by the socket manager's mutex.
class stream_transport final : public lower_layer {
public:
  explicit stream_transport(socket_manager& mgr) noexcept : mgr_(mgr) {
    // nop
  }

  /// Where chunks go: the TLS layer, a codec or the bridge.
  void set_upper(upper_layer* up) noexcept { up_ = up; }

  // -- lower_layer ------------------------------------------------------------

  bool send_locked(const bytes& data) override;
  void end_locked() override {
    // nop: the FIN goes out once the queue drained (shut_write_side)
  }
  void read_some() override;

  // -- read side (loop) -------------------------------------------------------

  /// One non-blocking recv into `buf`: > 0 bytes read (and the idle clock
  /// reset), 0 the peer's FIN, < 0 nothing now (the read re-armed, or the
  /// connection failed: `recv_failed`).
  long recv_some(char* buf, std::size_t cap);
  /// Waits for readability, then reads through the layers again.
  void arm_read();
  /// A recv() failed with errno: true to retry at once (EINTR); otherwise
  /// waits for readability (EAGAIN) or fails the connection.
  bool recv_failed();
  /// Hands up what the layers hold, then reads again, unless paused.
  void resume_reading();

  // -- write side -------------------------------------------------------------

  /// Sends `n` bytes at once if nothing is queued (and `more` does not say
  /// that more follows right away), and queues what the kernel did not take.
  /// Requires the mutex.
  void send_or_queue_locked(const char* data, std::size_t n, bool more);
  /// Writes the queue now unless the loop owns flushing; sets `arm` if the
  /// loop must wait for writability. Requires the mutex. Returns errno or 0.
  int push_locked(bool& arm);
  /// Loop: waits for writability, then flushes.
  void arm_write();
  /// Loop: flushes, acknowledges, finishes a closing connection or sends a
  /// pending FIN once the queue drained, resumes a paused reader.
  void on_writable();
  /// Loop: the queue is flushed; sends FIN (half-close).
  void shut_write_side();

  // -- flow control (requires the mutex) --------------------------------------

  /// Must reading pause? Checks the bridge's unprocessed counters and the
  /// write queue.
  bool must_pause_locked() const noexcept;
  /// May a paused reader resume?
  bool may_resume_locked() const noexcept;
  /// Checks whether a paused reader may resume; true if it was paused and
  /// now is not (the caller then posts `resume_reading`).
  bool unpause_locked() noexcept;

  bool queue_empty_locked() const noexcept { return wq_.empty(); }
  std::size_t queued_locked() const noexcept { return wq_bytes_; }
  /// Drops the queue: the connection is gone.
  void clear_locked() noexcept;

private:
  friend class socket_manager;
  friend class tls_transport;
  friend class actor_bridge;
  friend class framing_layer;

  /// Writes from the queue until it is empty or the kernel pushes back.
  /// Requires the mutex. Returns an errno value, 0 on success.
  int flush_locked();

  socket_manager& mgr_;
  upper_layer* up_ = nullptr;

  // -- loop -------------------------------------------------------------------
  timeouts::clock::time_point last_read_;
  timeouts::clock::time_point write_wait_since_;
  bool reading_ = false;
  bool read_armed_ = false;
  bool any_read_ = false;
  bool peer_eof_ = false;          // the peer ended its side (half-close)
  bool shut_wr_requested_ = false; // shutdown_write() seen
  bool write_shut_ = false;        // FIN sent
  bool write_waiting_ = false;     // the loop waits for writability

  // -- guarded by the mutex ---------------------------------------------------
  bool connected_ = false;   // direct sends allowed
  bool write_armed_ = false; // the loop owns flushing the queue
  bool read_paused_ = false; // the reader stopped for flow control
  ring<bytes> wq_;
  std::size_t wq_offset_ = 0; // bytes of wq_.front() already written
  std::size_t wq_bytes_ = 0;
};

} // namespace tcpactor
