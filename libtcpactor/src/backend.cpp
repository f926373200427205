// Back-end nodes: the services they publish and how a process joins BASP.

#include "tcpactor/backend.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tcpactor/errors.hpp"

namespace tcpactor {

namespace detail {

void openssl_error_queue_guard() noexcept; // openssl_guard.cpp

} // namespace detail

backend_actor::behavior_type echo_backend() {
  return {[](const bytes& in) { return in; }};
}

backend_actor::behavior_type upper_case_backend() {
  return {[](const bytes& in) {
    std::string out = in.to_string();
    for (auto& c : out)
      if (c >= 'a' && c <= 'z')
        c = static_cast<char>(c - 'a' + 'A');
    return bytes{out};
  }};
}

std::string backend_endpoint::to_string() const {
  // Brackets keep an IPv6 literal apart from its port.
  if (host.find(':') != std::string::npos)
    return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

caf::expected<std::vector<backend_endpoint>>
parse_backends(std::string_view list, std::string_view field) {
  auto bad = [&](std::string_view entry, const std::string& why) {
    return make_error(errc::invalid_config, std::string{field} + ": '" +
                                                std::string{entry} + "' " +
                                                why);
  };
  std::vector<backend_endpoint> result;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    auto end = list.find(',', pos);
    if (end == std::string_view::npos)
      end = list.size();
    auto entry = list.substr(pos, end - pos);
    while (!entry.empty() && std::isspace(static_cast<unsigned char>(entry[0])))
      entry.remove_prefix(1);
    while (!entry.empty() &&
           std::isspace(static_cast<unsigned char>(entry.back())))
      entry.remove_suffix(1);
    pos = end + 1;
    if (entry.empty())
      return bad(entry, "is empty: expected HOST:PORT");
    backend_endpoint ep;
    std::string_view port;
    if (entry[0] == '[') {
      auto close = entry.find(']');
      if (close == std::string_view::npos || close + 1 >= entry.size() ||
          entry[close + 1] != ':')
        return bad(entry, "is not [IPV6]:PORT");
      ep.host = std::string{entry.substr(1, close - 1)};
      port = entry.substr(close + 2);
    } else {
      auto colon = entry.rfind(':');
      if (colon == std::string_view::npos)
        return bad(entry, "has no port: expected HOST:PORT");
      if (entry.find(':') != colon)
        return bad(entry, "has several ':': write IPv6 as [ADDR]:PORT");
      ep.host = std::string{entry.substr(0, colon)};
      port = entry.substr(colon + 1);
    }
    if (ep.host.empty())
      return bad(entry, "has no host");
    uint32_t value = 0;
    if (port.empty() || port.size() > 5)
      return bad(entry, "has no port 1-65535");
    for (auto c : port) {
      if (c < '0' || c > '9')
        return bad(entry, "has a port that is not a number");
      value = value * 10 + static_cast<uint32_t>(c - '0');
    }
    if (value == 0 || value > 65535)
      return bad(entry, "has a port outside 1-65535");
    ep.port = static_cast<uint16_t>(value);
    result.push_back(std::move(ep));
  }
  return result;
}

namespace {

caf::error bad_node(const std::string& field, const std::string& what) {
  return make_error(errc::invalid_config, "node." + field + ": " + what);
}

std::string openssl_reason() {
  auto code = ERR_get_error();
  ERR_clear_error();
  if (code == 0)
    return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

caf::error readable(const std::string& field, const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return bad_node(field,
                    "cannot read '" + path + "': " + std::strerror(errno));
  return caf::none;
}

int passphrase_cb(char* buf, int size, int, void* user) {
  auto* pw = static_cast<const std::string*>(user);
  auto n = static_cast<int>(std::min<std::size_t>(pw->size(), size));
  std::memcpy(buf, pw->data(), static_cast<std::size_t>(n));
  return n;
}

} // namespace

caf::error node_config::validate() const {
  if (!tls)
    return caf::none;
  if (certificate.empty())
    return bad_node("certificate", "required with TLS between nodes");
  if (key.empty())
    return bad_node("key", "required with TLS between nodes");
  if (cafile.empty() && capath.empty())
    return bad_node("cafile", "required with TLS between nodes (or capath): "
                              "peers are verified against it");
  if (auto err = readable("certificate", certificate))
    return err;
  if (auto err = readable("key", key))
    return err;
  if (!cafile.empty())
    if (auto err = readable("cafile", cafile))
      return err;
  // libcaf_openssl reads these files only when a link opens, and then
  // reports a failed connection; check them here so a typo names the file.
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{
      SSL_CTX_new(TLS_method()), SSL_CTX_free};
  if (!ctx)
    return bad_node("certificate", openssl_reason());
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), certificate.c_str()) != 1)
    return bad_node("certificate",
                    "'" + certificate +
                        "' is no PEM certificate: " + openssl_reason());
  SSL_CTX_set_default_passwd_cb(ctx.get(), passphrase_cb);
  SSL_CTX_set_default_passwd_cb_userdata(ctx.get(),
                                         const_cast<std::string*>(&passphrase));
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) !=
      1) {
    // OpenSSL compares the key with the certificate as it loads it.
    auto mismatch =
        ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    return bad_node("key",
                    "'" + key + "' " +
                        (mismatch ? "does not match '" + certificate + "'"
                                  : std::string{"is no PEM key (or the "
                                                "passphrase is wrong)"}) +
                        ": " + openssl_reason());
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return bad_node("key", "'" + key + "' does not match '" + certificate +
                               "': " + openssl_reason());
  if (SSL_CTX_load_verify_locations(
          ctx.get(), cafile.empty() ? nullptr : cafile.c_str(),
          capath.empty() ? nullptr : capath.c_str()) != 1)
    return bad_node(
        cafile.empty() ? "capath" : "cafile",
        "'" + (cafile.empty() ? capath : cafile) +
            "' holds no usable CA certificate: " + openssl_reason());
  return caf::none;
}

caf::error configure_node(caf::actor_system_config& cfg,
                          const node_config& node) {
  if (auto err = node.validate())
    return err;
  // libcaf_openssl leaves OpenSSL errors queued; see openssl_guard.cpp.
  detail::openssl_error_queue_guard();
  // The one type our services send over BASP besides CAF's own.
  cfg.add_message_type<bytes>("tcpactor::bytes");
  cfg.load<caf::io::middleman>();
  if (node.tls) {
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = node.certificate;
    cfg.openssl_key = node.key;
    cfg.openssl_passphrase = node.passphrase;
    cfg.openssl_cafile = node.cafile;
    cfg.openssl_capath = node.capath;
  }
  return caf::none;
}

caf::expected<uint16_t> publish_backend(caf::actor_system& sys,
                                        const backend_actor& service,
                                        const std::string& host,
                                        uint16_t port) {
  if (!sys.has_middleman())
    return make_error(errc::invalid_config,
                      "publish_backend: the actor system has no middleman "
                      "(call configure_node first)");
  const char* in = host.empty() ? nullptr : host.c_str();
  // SO_REUSEADDR: a worker restarted at once binds its port again while the
  // old links sit in TIME_WAIT.
  auto res = sys.has_openssl_manager()
                 ? caf::openssl::publish(service, port, in, true)
                 : sys.middleman().publish(service, port, in, true);
  if (!res)
    return make_error(
        errc::bind_failed,
        backend_endpoint{host.empty() ? "0.0.0.0" : host, port}.to_string() +
            ": " + describe(res.error()));
  return *res;
}

} // namespace tcpactor
