#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "asio_glue.hpp"

namespace tcpactor {

class socket_manager;

/// The per-phase deadlines (first byte, idle read, write stall, lifetime) of
/// the transports on one I/O loop, checked by one periodic sweep instead of a
/// timer per connection: a transport pays a few timestamps, and activity only
/// stores the loop's cached clock, so nothing is re-armed per read. Mailbox
/// traffic never touches it. Precision is one tick: an eighth of the
/// shortest timeout watched, between 10 ms and 1 s.
///
/// Loop thread only. The timer runs only while something is watched, so an
/// idle loop still runs out of work when the pool stops.
class timeouts {
public:
  using clock = std::chrono::steady_clock;

  explicit timeouts(asio::io_context& loop);
  ~timeouts();

  timeouts(const timeouts&) = delete;
  timeouts& operator=(const timeouts&) = delete;

  /// Starts checking `t` with deadlines as short as `shortest`.
  void watch(socket_manager* t, std::chrono::milliseconds shortest);

  /// Stops checking `t`; a no-op if it is not watched.
  void unwatch(socket_manager* t);

  /// The sweep period: stamps taken from `now()` lag by at most this much.
  std::chrono::milliseconds period() const noexcept { return period_; }

  /// The loop's clock as of the last tick (or watch): cheap enough for
  /// every read.
  static clock::time_point now() noexcept;

private:
  void arm();
  void tick();

  asio::io_context& loop_;
  asio::steady_timer timer_;
  std::vector<socket_manager*> watched_;
  std::chrono::milliseconds period_{1000};
  bool armed_ = false;
};

} // namespace tcpactor
