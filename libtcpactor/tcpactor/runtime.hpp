#pragma once

#include <memory>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "tcpactor/config.hpp"

namespace tcpactor {

struct runtime_metrics;

/// Prepares the configuration a `caf::actor_system` for tcpactor is made
/// from: adds tcpactor's error category (`add_error_category`) and tunes
/// CAF's scheduler for actors that sockets wake, so that a chunk's actor
/// starts at once. A setting `cfg` already holds is kept.
void configure(caf::actor_system_config& cfg);

/// Owns the I/O threads that drive every socket of one actor system.
/// Declare it after the `caf::actor_system`: its destructor closes every
/// connection and listener it still drives, lets their actors see `closed`,
/// and joins the I/O threads, so `~actor_system` never waits on a socket.
class runtime {
public:
  struct impl;

  /// Starts the I/O threads, or names the bad field of `cfg`.
  static caf::expected<runtime> make(caf::actor_system& sys,
                                     runtime_config cfg = {});

  runtime(runtime&&) noexcept;
  runtime& operator=(runtime&&) noexcept;
  ~runtime();

  caf::actor_system& system() const noexcept;

  /// Number of I/O threads.
  std::size_t io_threads() const noexcept;

  /// Connections this runtime currently drives (accepted and outbound).
  std::size_t open_connections() const noexcept;

  /// What the runtime's connections did so far (tcpactor/metrics.hpp):
  /// counters summed over the I/O threads, cheap enough for every scrape.
  runtime_metrics metrics() const;

  /// Closes everything and joins the I/O threads; the destructor calls it.
  void shutdown();

  /// @private
  impl& internals() const noexcept { return *impl_; }

private:
  explicit runtime(std::unique_ptr<impl> ptr);

  std::unique_ptr<impl> impl_;
};

} // namespace tcpactor
