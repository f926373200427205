#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/error.hpp>

namespace tcpactor {

/// One extra certificate of a listener, chosen when the client's SNI host
/// name matches `host` ("*.example.com" matches one label).
struct tls_sni_certificate {
  std::string host;
  std::string cert_file;
  std::string key_file;
  std::string key_password;
};

/// TLS settings of a listener or client. Loaded and checked once when the
/// listener starts or the client connects, never per handshake.
struct tls_config {
  /// False: plain TCP, whatever else is set.
  bool enabled = false;

  // -- own identity (required on a listener, optional on a client) -----------

  /// Certificate chain, PEM: the leaf first, then intermediates.
  std::string cert_file;
  /// Private key, PEM (PKCS#8 or traditional, encrypted or not).
  std::string key_file;
  /// Password of an encrypted `key_file`.
  std::string key_password;
  /// A PKCS#12 keystore instead of `cert_file` + `key_file`.
  std::string pkcs12_file;
  std::string pkcs12_password;

  // -- peer verification ------------------------------------------------------

  /// CA certificates (PEM) that may sign the peer's certificate.
  std::string ca_file;
  /// Directory of CA certificates (PEM). Every file in it is read when the
  /// context is built, so hashing (`openssl rehash`) is optional and no file
  /// is read during a handshake.
  std::string ca_dir;
  /// CA certificates in a PKCS#12 trust store (as Java's keytool makes
  /// them: certificates, no key), beside or instead of `ca_file`/`ca_dir`.
  std::string trust_store_file;
  /// Password of `trust_store_file` (empty: none).
  std::string trust_store_password;
  /// Trust any certificate in `ca_file`/`ca_dir`/`trust_store_file` as an
  /// anchor, not only
  /// self-signed roots: a pinned server (or client) leaf certificate or an
  /// intermediate is then enough (OpenSSL's X509_V_FLAG_PARTIAL_CHAIN).
  /// Names and dates are still checked.
  bool trust_partial_chain = false;
  /// Client: verify the server's certificate. Without a CA set the
  /// system trust store is used. Switch off only for tests.
  bool verify_peer = true;
  /// Client: the name the server's certificate must carry and the SNI host
  /// name sent; empty: the host connected to.
  std::string server_name;
  /// Client: send SNI (not for IP literals, which RFC 6066 forbids).
  bool send_sni = true;

  /// Listener: whether clients must present a certificate (checked against
  /// `ca_file`/`ca_dir`).
  enum class client_auth : uint8_t { none, request, require };
  client_auth verify_client = client_auth::none;

  // -- protocol ---------------------------------------------------------------

  /// Lowest and highest protocol version: "TLSv1", "TLSv1.1", "TLSv1.2",
  /// "TLSv1.3"; empty: OpenSSL's default. OpenSSL 3 refuses TLSv1 and
  /// TLSv1.1 at security level 1 and above, so a min_version below TLSv1.2
  /// also lowers the security level to 0 (unless `ciphers` sets @SECLEVEL).
  std::string min_version = "TLSv1.2";
  std::string max_version;
  /// TLS 1.2 cipher list (OpenSSL syntax); empty: OpenSSL's default. IANA
  /// names ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", as Java and Go spell
  /// them) are accepted beside OpenSSL's. A name OpenSSL does not know is an
  /// error, not silently dropped.
  std::string ciphers;
  /// TLS 1.3 ciphersuites, e.g. "TLS_AES_128_GCM_SHA256"; empty: default.
  std::string ciphersuites;
  /// ALPN protocols in order of preference, e.g. {"h2", "http/1.1"}. A
  /// listener picks its first that the client offers; with no overlap the
  /// handshake goes on without ALPN (tls_info::alpn stays empty).
  std::vector<std::string> alpn;

  // -- listener only ----------------------------------------------------------

  /// Extra certificates chosen by SNI; `cert_file`/`key_file` (or the
  /// keystore) stay the default.
  std::vector<tls_sni_certificate> sni_certificates;

  // -- time -------------------------------------------------------------------

  /// A handshake that takes longer fails with `errc::tls_handshake_timeout`.
  std::chrono::milliseconds handshake_timeout{10'000};
  /// Lifetime of a cached session (listener cache and tickets; client reuse).
  std::chrono::seconds session_timeout{300};
  /// Listener: session cache and tickets. Client: resume the last session
  /// with the same server when reconnecting.
  bool session_resumption = true;

  /// Checks field values that need no files; file contents are checked when
  /// the listener starts or the client connects. Errors name
  /// `<prefix>.<field>`.
  caf::error validate(const std::string& prefix = "tls") const;
};

/// What a finished handshake agreed on; empty strings for plain TCP.
struct tls_info {
  /// "TLSv1.3", ...
  std::string version;
  /// OpenSSL's name of the cipher, e.g. "TLS_AES_256_GCM_SHA384".
  std::string cipher;
  /// The agreed ALPN protocol, if any.
  std::string alpn;
  /// The SNI host name the client sent (listener side).
  std::string server_name;
  /// The verified peer certificate's subject, one line
  /// ("CN=client,O=Example"), and its DNS/IP subject alternative names.
  std::string peer_subject;
  std::vector<std::string> peer_sans;
  /// True if the session was resumed.
  bool resumed = false;

  bool secure() const noexcept { return !version.empty(); }
};

} // namespace tcpactor
