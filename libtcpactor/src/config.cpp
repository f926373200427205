#include "tcpactor/config.hpp"

#include <cstdint>

#include <sys/un.h>

#include "tcpactor/errors.hpp"

namespace tcpactor {

namespace {

caf::error bad(const std::string& field, const std::string& what) {
  return make_error(errc::invalid_config, field + ": " + what);
}

// sun_path holds 108 bytes: a file path needs its NUL, an abstract name
// ("@name") has its '@' stored as the leading NUL.
constexpr std::size_t max_unix_path = sizeof(sockaddr_un::sun_path) - 1;

caf::error check_unix_path(const std::string& field, const std::string& path) {
  auto name = "'" + path + "'";
  if (path.find('\0') != std::string::npos)
    return bad(field, "contains a NUL byte");
  if (path == "@")
    return bad(field, "'@' needs an abstract socket name after it");
  auto len = path.front() == '@' ? path.size() - 1 : path.size();
  if (len > max_unix_path)
    return bad(field, name + " is " + std::to_string(len) +
                          " bytes, more than the " +
                          std::to_string(max_unix_path) +
                          " a Unix socket address holds");
  return caf::none;
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
  for (auto [name, value] :
       {std::pair{"first_byte_timeout", first_byte_timeout},
        std::pair{"idle_timeout", idle_timeout},
        std::pair{"write_stall_timeout", write_stall_timeout},
        std::pair{"max_lifetime", max_lifetime}})
    if (value.count() < 0)
      return bad(p + name, "must be 0 (off) or positive");
  for (auto [name, value] :
       {std::pair{"keepalive_idle", keepalive_idle},
        std::pair{"keepalive_interval", keepalive_interval}})
    if (value.count() < 0 || value.count() > 32767)
      return bad(p + name, "must be 0 (the system's) or 1-32767 s");
  if (keepalive_count > 127)
    return bad(p + "keepalive_count", "must be 0 (the system's) or 1-127");
  if (user_timeout.count() < 0 || user_timeout.count() > INT32_MAX)
    return bad(p + "user_timeout", "must be 0 (off) or 1 ms - 24 days");
  for (auto [name, value] : {std::pair{"receive_buffer", receive_buffer},
                             std::pair{"send_buffer", send_buffer}})
    if (value > 1024 * 1024 * 1024)
      return bad(p + name, "must be 0 (autotuning) or at most 1 GiB");
  if (auto err = framing.validate(p + "framing"))
    return err;
  if (half_close && (framing.type == framing_config::codec::length_prefix ||
                     framing.type == framing_config::codec::delimiter))
    // The peer's end arrives as an empty message, which a codec's empty
    // frame would be indistinguishable from.
    return bad(p + "half_close", "cannot be combined with framing (" +
                                     framing.to_string() +
                                     "): an empty frame would read as the "
                                     "peer's end");
  return caf::none;
}

std::string to_string(proxy_protocol x) {
  switch (x) {
    case proxy_protocol::off:
      return "off";
    case proxy_protocol::v1:
      return "v1";
    case proxy_protocol::v2:
      return "v2";
    case proxy_protocol::any:
      return "any";
  }
  return "proxy_protocol(" + std::to_string(static_cast<int>(x)) + ")";
}

bool from_string(std::string_view str, proxy_protocol& out) {
  for (auto x : {proxy_protocol::off, proxy_protocol::v1, proxy_protocol::v2,
                 proxy_protocol::any})
    if (str == to_string(x)) {
      out = x;
      return true;
    }
  return false;
}

caf::error listener_config::validate() const {
  if (host.empty())
    return bad("listener.host", "must not be empty");
  if (!unix_path.empty()) {
    if (auto err = check_unix_path("listener.unix_path", unix_path))
      return err;
    if (reuse_port)
      return bad("listener.reuse_port", "cannot be combined with unix_path");
    if (unix_mode != 0 && unix_path.front() == '@')
      return bad("listener.unix_mode",
                 "an abstract socket (unix_path '" + unix_path +
                     "') has no file to set permissions on");
  }
  if (unix_mode > 07777)
    return bad("listener.unix_mode", "must be 0 (umask) or at most 07777");
  if (unix_mode != 0 && unix_path.empty())
    return bad("listener.unix_mode", "needs unix_path");
  if (backlog < 1)
    return bad("listener.backlog", "must be at least 1");
  if (max_connections != 0 && max_connections_per_ip > max_connections)
    return bad("listener.max_connections_per_ip",
               "must not exceed max_connections (" +
                   std::to_string(max_connections) + ")");
  if (proxy_protocol > tcpactor::proxy_protocol::any)
    return bad("listener.proxy_protocol", "must be off, v1, v2 or any");
  if (proxy_protocol != tcpactor::proxy_protocol::off) {
    if (proxy_header_timeout.count() <= 0)
      return bad("listener.proxy_header_timeout", "must be positive");
    if (max_connections_per_ip != 0)
      // Admission happens at accept, before the header names the client:
      // the count would be the proxy's, a limit on all traffic through it.
      return bad("listener.max_connections_per_ip",
                 "cannot be combined with proxy_protocol (" +
                     to_string(proxy_protocol) +
                     "): every connection comes from the proxy's address");
  }
  if (auto err = tls.validate("listener.tls"))
    return err;
  if (tls.enabled && tls.cert_file.empty() && tls.pkcs12_file.empty())
    return bad("listener.tls.cert_file",
               "a certificate (cert_file and key_file, or pkcs12_file) is "
               "required when TLS is enabled");
  return connection.validate("listener.connection");
}

caf::error client_config::validate() const {
  if (!unix_path.empty()) {
    if (auto err = check_unix_path("client.unix_path", unix_path))
      return err;
    if (!local_host.empty() || local_port != 0)
      return bad("client.local_host",
                 "cannot be combined with unix_path (a Unix client binds "
                 "no address)");
    if (tls.enabled && tls.verify_peer && tls.server_name.empty())
      return bad("client.tls.server_name",
                 "is required with unix_path and verify_peer: there is no "
                 "host name to check the server's certificate against");
  } else if (host.empty()) {
    return bad("client.host", "is required");
  } else if (port == 0) {
    return bad("client.port", "must be 1-65535");
  }
  if (connect_timeout.count() <= 0)
    return bad("client.connect_timeout", "must be positive");
  if (read_timeout.count() <= 0)
    return bad("client.read_timeout", "must be positive");
  if (write_timeout.count() <= 0)
    return bad("client.write_timeout", "must be positive");
  if (local_port != 0 && local_host.empty())
    return bad("client.local_host", "is required when local_port is set");
  if (auto err = tls.validate("client.tls"))
    return err;
  return connection.validate("client.connection");
}

} // namespace tcpactor

namespace tcpactor {

caf::error tls_config::validate(const std::string& prefix) const {
  if (!enabled)
    return caf::none;
  auto p = prefix + ".";
  auto known = [](const std::string& v) {
    return v.empty() || v == "TLSv1" || v == "TLSv1.1" || v == "TLSv1.2" ||
           v == "TLSv1.3";
  };
  if (!known(min_version))
    return bad(p + "min_version", "'" + min_version +
                                      "' is not one of TLSv1, TLSv1.1, "
                                      "TLSv1.2, TLSv1.3");
  if (!known(max_version))
    return bad(p + "max_version", "'" + max_version +
                                      "' is not one of TLSv1, TLSv1.1, "
                                      "TLSv1.2, TLSv1.3");
  if (!min_version.empty() && !max_version.empty() && min_version > max_version)
    return bad(p + "max_version", "'" + max_version +
                                      "' is below min_version '" + min_version +
                                      "'");
  if (!cert_file.empty() && !pkcs12_file.empty())
    return bad(p + "pkcs12_file",
               "set either pkcs12_file or cert_file, not both");
  if (!cert_file.empty() && key_file.empty())
    return bad(p + "key_file", "is required with cert_file");
  if (cert_file.empty() && !key_file.empty())
    return bad(p + "cert_file", "is required with key_file");
  if (handshake_timeout.count() <= 0)
    return bad(p + "handshake_timeout", "must be positive");
  if (session_timeout.count() <= 0)
    return bad(p + "session_timeout", "must be positive");
  for (auto& proto : alpn)
    if (proto.empty() || proto.size() > 255)
      return bad(p + "alpn", "each protocol name must be 1-255 bytes");
  for (std::size_t i = 0; i < sni_certificates.size(); ++i) {
    auto& x = sni_certificates[i];
    auto q = p + "sni_certificates[" + std::to_string(i) + "].";
    if (x.host.empty())
      return bad(q + "host", "must not be empty");
    if (x.cert_file.empty())
      return bad(q + "cert_file", "is required");
    if (x.key_file.empty())
      return bad(q + "key_file", "is required");
  }
  return caf::none;
}

} // namespace tcpactor
