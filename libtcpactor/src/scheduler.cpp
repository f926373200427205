#include "scheduler.hpp"

#include <functional>
#include <utility>

#include <caf/atom.hpp>
#include <caf/defaults.hpp>
#include <caf/policy/work_sharing.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/scheduler/coordinator.hpp>
#include <caf/scheduler/test_coordinator.hpp>

namespace tcpactor::detail {

// -- timeout_clock ------------------------------------------------------------

timeout_clock::timeout_clock(caf::detail::thread_safe_actor_clock& inner)
    : inner_(inner) {
  // nop
}

timeout_clock::shard&
timeout_clock::shard_of(const caf::abstract_actor* self) noexcept {
  // Actors are heap blocks of at least 64 bytes: the low bits say nothing.
  auto h = std::hash<const caf::abstract_actor*>{}(self) >> 6;
  return shards_[h % shards];
}

void timeout_clock::remember(const caf::abstract_actor* self) {
  auto& s = shard_of(self);
  std::lock_guard<std::mutex> guard{s.mtx};
  s.actors.insert(self);
}

timeout_clock::time_point timeout_clock::now() const noexcept {
  return inner_.now();
}

timeout_clock::duration_type
timeout_clock::difference(caf::atom_value measurement, long units,
                          time_point t0, time_point t1) const noexcept {
  return inner_.difference(measurement, units, t0, t1);
}

void timeout_clock::set_ordinary_timeout(time_point t,
                                         caf::abstract_actor* self,
                                         caf::atom_value type, uint64_t id) {
  remember(self);
  inner_.set_ordinary_timeout(t, self, type, id);
}

void timeout_clock::set_request_timeout(time_point t, caf::abstract_actor* self,
                                        caf::message_id id) {
  remember(self);
  inner_.set_request_timeout(t, self, id);
}

void timeout_clock::set_multi_timeout(time_point t, caf::abstract_actor* self,
                                      caf::atom_value type, uint64_t id) {
  remember(self);
  inner_.set_multi_timeout(t, self, type, id);
}

void timeout_clock::cancel_ordinary_timeout(caf::abstract_actor* self,
                                            caf::atom_value type) {
  inner_.cancel_ordinary_timeout(self, type);
}

void timeout_clock::cancel_request_timeout(caf::abstract_actor* self,
                                           caf::message_id id) {
  inner_.cancel_request_timeout(self, id);
}

void timeout_clock::cancel_timeouts(caf::abstract_actor* self) {
  // An actor sets and cancels its own timeouts from its own context, one
  // thread at a time, so no set can race with this lookup. Erasing keeps the
  // set bounded by the live actors that ever set a timeout, and an address
  // reused by a later actor starts absent.
  bool had;
  {
    auto& s = shard_of(self);
    std::lock_guard<std::mutex> guard{s.mtx};
    had = s.actors.erase(self) > 0;
    ++(had ? s.forwarded : s.skipped);
  }
  if (had)
    inner_.cancel_timeouts(self);
}

uint64_t timeout_clock::cancels_forwarded() {
  uint64_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> guard{s.mtx};
    n += s.forwarded;
  }
  return n;
}

uint64_t timeout_clock::cancels_skipped() {
  uint64_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> guard{s.mtx};
    n += s.skipped;
  }
  return n;
}

void timeout_clock::schedule_message(time_point t,
                                     caf::strong_actor_ptr receiver,
                                     caf::mailbox_element_ptr content) {
  inner_.schedule_message(t, std::move(receiver), std::move(content));
}

void timeout_clock::schedule_message(time_point t, caf::group target,
                                     caf::strong_actor_ptr sender,
                                     caf::message content) {
  inner_.schedule_message(t, std::move(target), std::move(sender),
                          std::move(content));
}

void timeout_clock::cancel_all() {
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> guard{s.mtx};
    s.actors.clear();
  }
  inner_.cancel_all();
}

// -- make_scheduler -----------------------------------------------------------

namespace {

/// CAF's coordinator for `Policy`, its clock behind a `timeout_clock`. The
/// base still starts and stops the one dispatch thread, on its own clock.
template <class Policy>
class coordinator final : public caf::scheduler::coordinator<Policy> {
public:
  using super = caf::scheduler::coordinator<Policy>;

  explicit coordinator(caf::actor_system& sys)
      : super(sys), clock_(super::clock()) {
    // nop
  }

protected:
  caf::detail::thread_safe_actor_clock& clock() noexcept override {
    return clock_;
  }

private:
  timeout_clock clock_;
};

} // namespace

caf::actor_system::module* make_scheduler(caf::actor_system& sys) {
  // The same choice CAF makes when no scheduler module is loaded.
  auto policy = caf::get_or(sys.config(), "scheduler.policy",
                            caf::defaults::scheduler::policy);
  if (policy == caf::atom("testing"))
    return new caf::scheduler::test_coordinator(sys);
  if (policy == caf::atom("sharing"))
    return new coordinator<caf::policy::work_sharing>(sys);
  return new coordinator<caf::policy::work_stealing>(sys);
}

timeout_clock* timeout_clock_of(caf::actor_system& sys) noexcept {
  return dynamic_cast<timeout_clock*>(&sys.clock());
}

} // namespace tcpactor::detail
