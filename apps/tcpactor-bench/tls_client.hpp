#pragma once

// The client-side TLS context of tcpactor-bench: plain OpenSSL, built once
// from the options and shared by every load thread (SSL_new on one SSL_CTX
// from several threads is safe).

#include <memory>
#include <string>

#include <openssl/types.h>

#include "options.hpp"

namespace tcpactor_bench {

struct ssl_ctx_deleter {
  void operator()(SSL_CTX* ctx) const;
};

using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_deleter>;

/// Builds the SSL_CTX for `opts` (which must have `tls` set). On failure
/// returns null and sets `err` to one line naming the option and OpenSSL's
/// reason, e.g. "--tls-ca: ca.pem: no such file".
ssl_ctx_ptr make_client_context(const options& opts, std::string& err);

/// The name to send as SNI: --tls-sni, else --host unless it is an IP
/// literal (RFC 6066 forbids those). Empty: send none.
std::string sni_name(const options& opts);

/// Why the last TLS call on `ssl` failed, from OpenSSL's error queue (which
/// it empties) and the verify result, e.g. "certificate verify failed
/// (self-signed certificate)". `ssl_error` is SSL_get_error's answer; `sys`
/// the errno right after the call.
std::string tls_failure(const SSL* ssl, int ssl_error, int sys);

} // namespace tcpactor_bench
