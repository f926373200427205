#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_set>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>

namespace tcpactor::detail {

/// The clock of tcpactor's scheduler: CAF's own thread-safe clock, except
/// that it forgets an ending actor only if that actor ever set a timeout.
///
/// CAF 0.17 cancels every ending actor's timeouts through the clock thread
/// (`local_actor::cleanup`), a heap event plus a wake-up of that thread even
/// for an actor that never set one, as a connection actor usually does not
/// (README, Performance, has what that cost in connect churn). Every timeout
/// an actor sets passes through `set_*` here first, so an actor absent from
/// the set has nothing to cancel.
class timeout_clock final : public caf::detail::thread_safe_actor_clock {
public:
  /// Forwards to `inner`, whose dispatch loop CAF's coordinator runs; this
  /// object's own loop never runs.
  explicit timeout_clock(caf::detail::thread_safe_actor_clock& inner);

  time_point now() const noexcept override;

  duration_type difference(caf::atom_value measurement, long units,
                           time_point t0,
                           time_point t1) const noexcept override;

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self,
                            caf::atom_value type, uint64_t id) override;

  void set_request_timeout(time_point t, caf::abstract_actor* self,
                           caf::message_id id) override;

  void set_multi_timeout(time_point t, caf::abstract_actor* self,
                         caf::atom_value type, uint64_t id) override;

  void cancel_ordinary_timeout(caf::abstract_actor* self,
                               caf::atom_value type) override;

  void cancel_request_timeout(caf::abstract_actor* self,
                              caf::message_id id) override;

  void cancel_timeouts(caf::abstract_actor* self) override;

  void schedule_message(time_point t, caf::strong_actor_ptr receiver,
                        caf::mailbox_element_ptr content) override;

  void schedule_message(time_point t, caf::group target,
                        caf::strong_actor_ptr sender,
                        caf::message content) override;

  void cancel_all() override;

  /// How many `cancel_timeouts` reached the clock thread, and how many were
  /// answered here (for tests).
  uint64_t cancels_forwarded();
  uint64_t cancels_skipped();

private:
  // Sharded by actor address, so that threads ending unrelated actors rarely
  // share a lock.
  static constexpr size_t shards = 16;

  // The counts live under the shard's lock, which every cancel takes anyway:
  // no cache line shared by all threads on the path of each ending actor.
  struct alignas(64) shard {
    std::mutex mtx;
    std::unordered_set<const caf::abstract_actor*> actors;
    uint64_t forwarded = 0;
    uint64_t skipped = 0;
  };

  shard& shard_of(const caf::abstract_actor* self) noexcept;

  void remember(const caf::abstract_actor* self);

  caf::detail::thread_safe_actor_clock& inner_;
  shard shards_[shards];
};

/// CAF's scheduler as `scheduler.policy` chooses it (work stealing, work
/// sharing or the test coordinator), with a `timeout_clock` in front of its
/// clock for the two real policies. For `actor_system_config`'s module
/// factories: `configure()` installs it.
caf::actor_system::module* make_scheduler(caf::actor_system& sys);

/// The clock of `sys` when its scheduler came from `make_scheduler`, else
/// null.
timeout_clock* timeout_clock_of(caf::actor_system& sys) noexcept;

} // namespace tcpactor::detail
