// The handler path: a chunk or frame -> `bytes` request -> the connection's
// actor; its reply comes back through socket_manager::enqueue.

#include "actor_bridge.hpp"

#include <caf/mailbox_element.hpp>

#include "socket_manager.hpp"

namespace tcpactor {

namespace {

// Largest chunk handled on the I/O thread with `handlers_on_io_thread`.
constexpr std::size_t inline_chunk_limit = 4096;

} // namespace

bool actor_bridge::consume(bytes chunk, std::size_t held) {
  auto rid = ++last_request_;
  bool pause;
  {
    std::lock_guard<std::mutex> guard{mgr_.mtx_};
    pending_.push_back({rid, held});
    pending_bytes_ += held;
    metrics_registry::add(mgr_.metrics().local().unprocessed, held);
    pause = mgr_.stream_.read_paused_ = mgr_.stream_.must_pause_locked();
  }
  // A request, so the handler's reply comes back to enqueue() and is written.
  // Handled on the I/O thread (opt-in) only while the chunk is small: the
  // hop to a worker costs a fixed few microseconds, which the work a large
  // chunk brings (at least its reply's copy into the socket) outweighs, and
  // that work then runs beside the loop's reads instead of after them.
  auto* eu = chunk.size() <= inline_chunk_limit ? mgr_.unit() : nullptr;
  if (mgr_.target_)
    mgr_.target_->enqueue(caf::make_mailbox_element(mgr_.self_ptr(),
                                                    caf::make_message_id(rid),
                                                    {}, std::move(chunk)),
                          eu);
  return pause;
}

void actor_bridge::end_of_stream(caf::error reason) {
  auto& st = mgr_.stream_;
  if (mgr_.cfg_->half_close && !reason && !st.write_shut_) {
    // The peer is done sending, we are not: an empty chunk says so, and its
    // reply (if any) is written like any other.
    consume(bytes{}, 0);
    return;
  }
  bool now;
  {
    std::lock_guard<std::mutex> guard{mgr_.mtx_};
    now = pending_.empty();
    if (!now)
      eof_pending_ = true;
  }
  // Replies to chunks read before the end still go out before we close.
  if (now)
    mgr_.begin_close(std::move(reason));
  else
    mgr_.close_reason_ = std::move(reason);
}

void actor_bridge::request_done(uint64_t request_id) {
  bool resume = false;
  bool drained = false;
  {
    std::lock_guard<std::mutex> guard{mgr_.mtx_};
    // Replies come in order unless a handler answers through a promise, so
    // the match is almost always the front.
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      if (pending_[i].first == request_id) {
        pending_bytes_ -= pending_[i].second;
        metrics_registry::add(mgr_.metrics().local().unprocessed,
                              -static_cast<uint64_t>(pending_[i].second));
        if (i == 0)
          pending_.pop_front();
        else
          pending_.erase(i);
        break;
      }
    }
    resume = mgr_.stream_.unpause_locked();
    if (eof_pending_ && pending_.empty()) {
      eof_pending_ = false;
      drained = true;
    }
  }
  if (resume)
    mgr_.post([m = &mgr_] { m->resume_reading(); });
  if (drained)
    mgr_.post([m = &mgr_] { m->begin_close(std::move(m->close_reason_)); });
}

void actor_bridge::clear_locked() noexcept {
  pending_.clear();
  metrics_registry::add(mgr_.metrics().local().unprocessed,
                        -static_cast<uint64_t>(pending_bytes_));
  pending_bytes_ = 0;
  eof_pending_ = false;
}

} // namespace tcpactor
