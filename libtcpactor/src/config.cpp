#include "tcpactor/config.hpp"

#include "tcpactor/errors.hpp"

namespace tcpactor {

namespace {

caf::error bad(const std::string& field, const std::string& what) {
  return make_error(errc::invalid_config, field + ": " + what);
}

} // namespace

caf::error runtime_config::validate() const {
  if (io_threads > 1024)
    return bad("runtime.io_threads", "must be 0 (auto) or 1-1024");
  return caf::none;
}

caf::error connection_config::validate(const std::string& prefix) const {
  auto p = prefix + ".";
  if (read_chunk < 512 || read_chunk > 16 * 1024 * 1024)
    return bad(p + "read_chunk", "must be 512 B - 16 MiB");
  if (max_unprocessed_bytes < read_chunk)
    return bad(p + "max_unprocessed_bytes", "must be at least read_chunk (" +
                                                std::to_string(read_chunk) +
                                                ")");
  if (max_unprocessed_chunks == 0)
    return bad(p + "max_unprocessed_chunks", "must be at least 1");
  if (write_high_watermark == 0)
    return bad(p + "write_high_watermark", "must be at least 1");
  if (write_low_watermark > write_high_watermark)
    return bad(p + "write_low_watermark",
               "must not exceed write_high_watermark");
  if (write_queue_limit < write_high_watermark)
    return bad(p + "write_queue_limit",
               "must be at least write_high_watermark");
  if (close_timeout.count() <= 0)
    return bad(p + "close_timeout", "must be positive");
  return caf::none;
}

caf::error listener_config::validate() const {
  if (host.empty())
    return bad("listener.host", "must not be empty");
  if (backlog < 1)
    return bad("listener.backlog", "must be at least 1");
  return connection.validate("listener.connection");
}

caf::error client_config::validate() const {
  if (host.empty())
    return bad("client.host", "is required");
  if (port == 0)
    return bad("client.port", "must be 1-65535");
  if (connect_timeout.count() <= 0)
    return bad("client.connect_timeout", "must be positive");
  if (read_timeout.count() <= 0)
    return bad("client.read_timeout", "must be positive");
  if (write_timeout.count() <= 0)
    return bad("client.write_timeout", "must be positive");
  if (local_port != 0 && local_host.empty())
    return bad("client.local_host", "is required when local_port is set");
  return connection.validate("client.connection");
}

} // namespace tcpactor
