#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/message_id.hpp>

#include "layer.hpp"
#include "ring.hpp"
#include "tcpactor/tls.hpp"

using SSL = struct ssl_st;

namespace tcpactor {

class socket_manager;
class tls_context;

/// TLS between the stream and the layers above: decrypts what the stream
/// reads before handing it up, encrypts what comes down before the stream
/// sends it. OpenSSL reads the loop's received bytes in place and writes
/// through our own BIO into the stream's send-or-queue (tls_bio in the
/// source), so socket calls, flow control and the write queue stay the
/// stream's; the queue carries ciphertext.
///
/// Threads: handshake steps (the expensive public-key work) run on the
/// runtime's crypto threads, never on an I/O loop; record encryption runs on
/// the writer's thread and decryption on the loop, one record at a time. The
/// SSL object is guarded by the socket manager's mutex.
class tls_transport final : public lower_layer {
public:
  tls_transport(socket_manager& mgr, std::shared_ptr<tls_context> ctx, SSL* ssl,
                std::chrono::milliseconds handshake_timeout);
  ~tls_transport() override;

  /// Where plaintext goes: a codec or the bridge.
  void set_upper(upper_layer* up) noexcept { up_ = up; }

  // -- lower_layer ------------------------------------------------------------

  /// Encrypts `data`; before the handshake finished, keeps it for then.
  bool send_locked(const bytes& data) override;
  /// Sends close_notify unless sent.
  void end_locked() override;
  /// Decrypts what OpenSSL holds, then what the socket has.
  void read_some() override;

  // -- handshake (loop) -------------------------------------------------------

  /// Starts the handshake (timer, first flight or first read); `done` runs
  /// on the loop once it succeeded (a server's listener), or the bridge
  /// starts (a client) when `done` is empty.
  void begin_handshake(std::function<void()> done);

  /// False until the handshake finished. Requires the mutex.
  bool ready_locked() const noexcept { return ready_; }
  /// Keeps a write made before the handshake finished, with its ack, for
  /// then. Requires the mutex.
  void keep_early_locked(const bytes& data, caf::strong_actor_ptr ack_to,
                         caf::message_id ack_mid);
  /// Bytes kept that way.
  std::size_t early_bytes_locked() const noexcept { return early_bytes_; }

  /// Frees the OpenSSL state; queues the acks of unsent early writes for a
  /// `closed` answer. Requires the mutex.
  template <class F>
  void release_locked(F&& unsent_ack) {
    for (; !early_.empty(); early_.pop_front())
      if (early_.front().to)
        unsent_ack(std::move(early_.front().to), early_.front().mid);
    early_bytes_ = 0;
    release_ssl_locked();
  }

  /// Drops the listener's callback, which holds the socket manager.
  void forget_callback() { on_handshake_ = nullptr; }

  const tls_info& info() const noexcept { return info_; }

  /// What the read BIO gives OpenSSL: the loop's last recv, lent for one
  /// round of SSL_read, after what OpenSSL left of earlier ones (or a
  /// handshake step's input), which is kept here.
  struct input {
    const char* lent = nullptr;
    std::size_t lent_size = 0;
    std::vector<char> kept;
    std::size_t kept_pos = 0;
  };

private:
  friend struct tls_bio;

  /// OpenSSL's write BIO: hands one piece of ciphertext to the stream.
  void out_locked(const char* data, std::size_t n);
  void release_ssl_locked();
  /// Loop: waits for handshake bytes and hands them to a crypto thread.
  void arm_handshake_read();
  /// Crypto thread: feeds `in` to OpenSSL and sends what it answers.
  void handshake_step(std::vector<char> in);
  /// Loop: acts on the outcome of one handshake step.
  void on_handshake_step(int rc, int ssl_err, int io_err, bool arm,
                         std::string why);
  /// Encrypts `data` record by record. Requires the mutex.
  bool encrypt_locked(const bytes& data);

  socket_manager& mgr_;
  upper_layer* up_ = nullptr;
  std::shared_ptr<tls_context> ctx_;
  std::chrono::milliseconds handshake_timeout_;
  // Guarded by the mutex: actor threads encrypt, the loop decrypts.
  SSL* ssl_ = nullptr;
  bool ready_ = false; // handshake done: writes encrypt directly
  bool close_notify_sent_ = false;
  bool more_ = false; // the record being sealed is not a write's last
  input in_;
  // Writes made before the handshake finished, in order, with their acks.
  struct early_write {
    bytes data;
    caf::strong_actor_ptr to;
    caf::message_id mid;
  };
  ring<early_write> early_;
  std::size_t early_bytes_ = 0;
  // Loop only.
  std::function<void()> on_handshake_;
  // Written once by the handshake's last step, before anyone reads it.
  tls_info info_;
};

} // namespace tcpactor
