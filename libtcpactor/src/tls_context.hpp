#pragma once

// The TLS configuration, loaded once per listener or client configuration:
// one OpenSSL SSL_CTX (plus one per SNI certificate), shared by every
// connection and swapped atomically on reload.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "tcpactor/tls.hpp"

using SSL = struct ssl_st;

namespace tcpactor {

class tls_context {
public:
  enum class role : uint8_t { server, client };

  /// Loads every file `cfg` names and configures OpenSSL. Errors are
  /// `errc::invalid_config` naming `<prefix>.<field>`, the file and the
  /// cause, e.g. "listener.tls.key_file: /x/key.pem: key does not match the
  /// certificate in listener.tls.cert_file".
  static caf::expected<std::shared_ptr<tls_context>>
  make(const tls_config& cfg, role r, const std::string& prefix);

  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  /// A new server-side SSL object (accept state). Never null unless out of
  /// memory (then returns nullptr).
  SSL* new_server() const;

  /// A new client-side SSL object (connect state) for `host`:`port`: sets
  /// SNI and hostname verification (from `server_name` or `host`) and
  /// offers the last session of the same server for resumption.
  SSL* new_client(const std::string& host, uint16_t port) const;

  /// Client: remember `ssl`'s session for the next connection to
  /// `host`:`port`. Call once the handshake finished.
  void save_session(SSL* ssl, const std::string& host, uint16_t port) const;

  /// Reads what `ssl`'s finished handshake agreed on.
  static tls_info info(SSL* ssl);

  /// OpenSSL's reasons for the last failure on this thread, plus the
  /// verification result of `ssl` if it failed, e.g. "certificate verify
  /// failed: unable to get local issuer certificate". Clears the queue.
  static std::string last_error(SSL* ssl);

  const tls_config& config() const noexcept;

  /// One certificate this context serves and when it expires.
  struct served_certificate {
    std::string file;      // cert_file or pkcs12_file it came from
    std::string sni;       // the SNI pattern; empty for the default one
    int64_t not_after = 0; // Unix time
  };
  /// Its own certificate and the SNI ones, read when it was made.
  const std::vector<served_certificate>& certificates() const noexcept;

private:
  struct impl;
  explicit tls_context(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

/// A listener's current context; `reload` builds a new one from the same
/// configuration (re-reading the files) and swaps it in for new handshakes.
/// Open connections keep the SSL objects of the old one.
class tls_context_holder {
public:
  tls_context_holder(std::shared_ptr<tls_context> ctx, tls_config cfg,
                     tls_context::role r, std::string prefix);

  std::shared_ptr<tls_context> get() const;

  /// On failure keeps the old context and returns why.
  caf::error reload();

private:
  mutable std::mutex mtx_;
  std::shared_ptr<tls_context> ctx_;
  tls_config cfg_;
  tls_context::role role_;
  std::string prefix_;
};

} // namespace tcpactor
