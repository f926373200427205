#pragma once

// The daemon's metrics endpoint: a tiny HTTP/1.1 server, itself a tcpactor
// listener, that answers GET /metrics with the Prometheus text of another
// runtime's metrics.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "tcpactor/listener.hpp"
#include "tcpactor/runtime.hpp"

namespace tcpactor_echo {

/// What one HTTP request asks for, once `head` (the bytes so far) holds it.
struct http_verdict {
  enum kind_t : uint8_t {
    incomplete, ///< the head has not ended yet
    metrics,    ///< GET /metrics: 200 and the metrics
    not_found,  ///< a well-formed GET or HEAD of another path: 404
    bad_method, ///< well-formed, but not GET or HEAD: 405
    bad_request ///< not an HTTP/1.x request, or a head beyond the limit: 400
  };
  kind_t kind = incomplete;
  bool head_only = false; ///< HEAD: the headers without the body
};

/// Largest request head accepted; a longer one is answered with 400.
constexpr std::size_t max_request_head = 8 * 1024;

/// Judges the request in `head` (everything read so far).
http_verdict judge_request(std::string_view head);

/// Serves the metrics of `watched` on `host`:`port` with its own runtime (one
/// I/O thread), so scrapes neither count in the metrics they read nor
/// compete with the service for its loop. A request must arrive whole within
/// 5 s; every answer closes the connection; at most 16 scrapers at a time.
class metrics_endpoint {
public:
  static caf::expected<std::unique_ptr<metrics_endpoint>>
  start(caf::actor_system& sys, const tcpactor::runtime& watched,
        const std::string& host, uint16_t port);

  ~metrics_endpoint();

  const tcpactor::listener& listener() const noexcept { return listener_; }

private:
  metrics_endpoint(tcpactor::runtime rt, tcpactor::listener lst);

  tcpactor::runtime rt_;
  tcpactor::listener listener_;
};

} // namespace tcpactor_echo
