#include "tcpactor/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace tcpactor::log {

namespace {

std::atomic<level> current{level::warning};
std::mutex out_mtx;

constexpr const char* names[] = {"trace",   "debug", "info",
                                 "warning", "error", "quiet"};

} // namespace

bool from_string(std::string_view str, level& out) {
  for (int i = 0; i < 6; ++i)
    if (str == names[i]) {
      out = static_cast<level>(i);
      return true;
    }
  return false;
}

std::string to_string(level x) {
  return names[static_cast<int>(x)];
}

void set_level(level x) {
  current = x;
}

level current_level() noexcept {
  return current;
}

bool enabled(level x) noexcept {
  return x >= current.load(std::memory_order_relaxed) && x != level::quiet;
}

void write(level x, std::string_view msg) {
  if (!enabled(x))
    return;
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
  // One fprintf per line keeps lines whole; the lock keeps them ordered.
  std::lock_guard<std::mutex> guard{out_mtx};
  std::fprintf(stderr, "%s.%03dZ %-7s %.*s\n", stamp, static_cast<int>(ms),
               names[static_cast<int>(x)], static_cast<int>(msg.size()),
               msg.data());
}

} // namespace tcpactor::log
