#include "tls_client.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace tcpactor_bench {

namespace {

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

/// The reason of the oldest queued OpenSSL error; empties the queue, so the
/// next failure on this thread does not report a stale cause.
std::string drain_errors() {
  auto code = ERR_get_error();
  std::string why;
  if (code != 0) {
    if (auto* reason = ERR_reason_error_string(code))
      why = reason;
    else
      why = "OpenSSL error " + std::to_string(code);
  }
  ERR_clear_error();
  return why;
}

std::string with_reason(std::string what) {
  auto why = drain_errors();
  return why.empty() ? what : what + ": " + why;
}

} // namespace

void ssl_ctx_deleter::operator()(SSL_CTX* ctx) const {
  SSL_CTX_free(ctx);
}

std::string sni_name(const options& opts) {
  if (!opts.tls_sni.empty())
    return opts.tls_sni;
  return is_ip_literal(opts.host) ? std::string{} : opts.host;
}

ssl_ctx_ptr make_client_context(const options& opts, std::string& err) {
  ssl_ctx_ptr ctx{SSL_CTX_new(TLS_client_method())};
  if (!ctx) {
    err = with_reason("--tls: SSL_CTX_new failed");
    return nullptr;
  }
  // Partial writes let one SSL_write return after each record, so `sent`
  // tracks what reached the socket as closely as the plain path does. The
  // retry after WANT_WRITE passes the same bytes from the same pattern
  // offset; the moving-buffer mode keeps OpenSSL from insisting on the
  // identical pointer should that ever change.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read-ahead fetches whole records (and more) per recv instead of a 5-byte
  // header and then the body: half the syscalls on the load generator's
  // side of a shared 2-core machine. The price is decrypted-but-unread data
  // inside SSL that epoll cannot see; load_thread drains SSL_has_pending.
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  if (!opts.tls_version.empty()) {
    auto v = opts.tls_version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx.get(), v) != 1 ||
        SSL_CTX_set_max_proto_version(ctx.get(), v) != 1) {
      err = with_reason("--tls-version: " + opts.tls_version);
      return nullptr;
    }
  }
  if (!opts.tls_ciphers.empty() &&
      SSL_CTX_set_cipher_list(ctx.get(), opts.tls_ciphers.c_str()) != 1) {
    err = with_reason("--tls-ciphers: '" + opts.tls_ciphers + "'");
    return nullptr;
  }
  if (!opts.tls_ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(ctx.get(), opts.tls_ciphersuites.c_str()) != 1) {
    err = with_reason("--tls-ciphersuites: '" + opts.tls_ciphersuites + "'");
    return nullptr;
  }
  if (!opts.tls_ca.empty()) {
    // OpenSSL's "no such file" comes without the path; check first.
    if (auto* f = std::fopen(opts.tls_ca.c_str(), "rb")) {
      std::fclose(f);
    } else {
      err = "--tls-ca: " + opts.tls_ca + ": " + std::strerror(errno);
      return nullptr;
    }
    if (SSL_CTX_load_verify_locations(ctx.get(), opts.tls_ca.c_str(),
                                      nullptr) != 1) {
      err = with_reason("--tls-ca: " + opts.tls_ca);
      return nullptr;
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    // Checking the name once in the context's parameters, which every SSL
    // inherits, spares a per-connection copy.
    auto* param = SSL_CTX_get0_param(ctx.get());
    auto name = opts.tls_sni.empty() ? opts.host : opts.tls_sni;
    auto ok = is_ip_literal(name)
                  ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                  : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
    if (ok != 1) {
      err = with_reason("--tls-ca: cannot verify the name '" + name + "'");
      return nullptr;
    }
  }
  return ctx;
}

std::string tls_failure(const SSL* ssl, int ssl_error, int sys) {
  auto why = drain_errors();
  // Without --tls-ca OpenSSL still records its verdict but ignores it;
  // naming it then would blame a failure on a check nobody asked for.
  if (ssl != nullptr && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0) {
    auto verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK)
      why += std::string{why.empty() ? "" : " "} + "(" +
             X509_verify_cert_error_string(verify) + ")";
  }
  if (!why.empty())
    return why;
  switch (ssl_error) {
    case SSL_ERROR_SYSCALL:
      return sys != 0 ? std::string{std::strerror(sys)}
                      : std::string{"unexpected EOF"};
    case SSL_ERROR_ZERO_RETURN:
      return "the server sent close_notify";
    default:
      return "SSL_get_error " + std::to_string(ssl_error);
  }
}

} // namespace tcpactor_bench
