#include "timeouts.hpp"

#include <algorithm>

#include "socket_manager.hpp"

namespace tcpactor {

namespace {

thread_local timeouts::clock::time_point coarse_now;

} // namespace

timeouts::timeouts(asio::io_context& loop) : loop_(loop), timer_(loop) {
  // nop
}

timeouts::~timeouts() {
  // The loop stopped: nothing is watched and the timer is idle.
}

timeouts::clock::time_point timeouts::now() noexcept {
  return coarse_now;
}

void timeouts::watch(socket_manager* t, std::chrono::milliseconds shortest) {
  coarse_now = clock::now();
  if (t->watch_index_ != socket_manager::not_watched)
    return;
  t->watch_index_ = static_cast<uint32_t>(watched_.size());
  watched_.push_back(t);
  auto period = std::clamp(shortest / 8, std::chrono::milliseconds{10},
                           std::chrono::milliseconds{1000});
  if (period < period_) {
    period_ = period;
    if (armed_) {
      // Re-arm sooner; the cancelled wait sees operation_aborted.
      timer_.cancel();
      armed_ = false;
    }
  }
  arm();
}

void timeouts::unwatch(socket_manager* t) {
  auto i = t->watch_index_;
  if (i == socket_manager::not_watched)
    return;
  // Swap-remove keeps this O(1).
  watched_[i] = watched_.back();
  watched_[i]->watch_index_ = i;
  watched_.pop_back();
  t->watch_index_ = socket_manager::not_watched;
  if (watched_.empty() && armed_) {
    // Let the loop run out of work when the pool stops.
    timer_.cancel();
    armed_ = false;
    period_ = std::chrono::milliseconds{1000};
  }
}

void timeouts::arm() {
  if (armed_ || watched_.empty())
    return;
  armed_ = true;
  timer_.expires_after(period_);
  timer_.async_wait([this](error_code ec) {
    if (ec)
      return; // cancelled: whoever cancelled re-arms if needed
    armed_ = false;
    tick();
    arm();
  });
}

void timeouts::tick() {
  coarse_now = clock::now();
  // Acting may close a transport, which unwatches it: collect first.
  std::vector<caf::strong_actor_ptr> due;
  for (auto* t : watched_)
    if (t->deadline_passed(coarse_now))
      due.emplace_back(t->ctrl());
  for (auto& ptr : due)
    socket_manager::from(ptr)->on_deadline(coarse_now);
}

} // namespace tcpactor
