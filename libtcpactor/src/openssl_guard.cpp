// Empties OpenSSL's error queue before every SSL_read, SSL_write,
// SSL_connect and SSL_accept in the process, libcaf_openssl's included.
//
// Why: SSL_get_error() reports SSL_ERROR_SSL whenever the calling thread's
// error queue holds an entry, even one left by an unrelated connection.
// libcaf_openssl 0.17 never clears that queue, and runs every BASP link of a
// node on the one multiplexer thread. So one failed handshake (a peer with
// an untrusted certificate, or anyone probing a worker's TLS port) leaves an
// entry behind, and the next SSL_read that merely wants more data on a good
// link reads as a fatal error: CAF drops that link, and every connection on
// it fails with backend_down. Measured: a front end linked to a trusted and
// an untrusted worker lost the trusted link at its first request.
//
// libcaf_openssl calls these functions through the dynamic symbol table, so
// definitions here (in the executable, or in libtcpactor.so ahead of
// libssl) take its calls first; each clears the queue, then calls OpenSSL's
// own, found with dlsym(RTLD_NEXT). Our own transport clears the queue
// itself as well, so nothing depends on this for our sockets.

#include <dlfcn.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace tcpactor::detail {

/// Referenced by configure_node(), so a static link keeps this file.
void openssl_error_queue_guard() noexcept {
  // nop
}

} // namespace tcpactor::detail

namespace {

template <class Fn>
Fn next_symbol(const char* name) noexcept {
  // RTLD_NEXT: the definition after this object's in the lookup order, i.e.
  // libssl's.
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  using fn = int (*)(SSL*, void*, int);
  static const fn real = next_symbol<fn>("SSL_read");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  using fn = int (*)(SSL*, const void*, int);
  static const fn real = next_symbol<fn>("SSL_write");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_connect(SSL* ssl) {
  using fn = int (*)(SSL*);
  static const fn real = next_symbol<fn>("SSL_connect");
  ERR_clear_error();
  return real(ssl);
}

int SSL_accept(SSL* ssl) {
  using fn = int (*)(SSL*);
  static const fn real = next_symbol<fn>("SSL_accept");
  ERR_clear_error();
  return real(ssl);
}

} // extern "C"
