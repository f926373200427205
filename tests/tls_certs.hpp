#pragma once

// Real certificates for TLS tests, made by the `openssl` command line in a
// fresh temporary directory that the destructor removes. EC P-256 keys keep
// the whole set under a second. Every path is absolute.

#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include <boost/test/unit_test.hpp>

#include "tcpactor/tls.hpp"

namespace tcpactor::test {

struct tls_certs {
  // -- trust ------------------------------------------------------------------
  std::string dir;      // the temporary directory holding everything
  std::string ca;       // CA certificate (PEM), CN=tcpactor test CA
  std::string ca_key;   // its key (PKCS#8 PEM)
  std::string ca_dir;   // directory with ca.pem, hashed (`openssl rehash`)
  std::string rogue_ca; // an unrelated CA nobody trusts

  // -- servers (all signed by `ca` unless noted)
  // --------------------------------
  std::string server_cert; // CN=localhost,O=Example; SAN DNS:localhost,
                           // IP:127.0.0.1, IP:::1
  std::string server_key;  // its key, unencrypted PKCS#8 PEM
  std::string server_key_encrypted;   // same key, encrypted PKCS#8 (AES-256)
  std::string key_password;           // the password of server_key_encrypted
  std::string server_key_traditional; // same key, SEC1 "EC PRIVATE KEY" PEM
  std::string server_p12;   // server_cert + server_key + ca as PKCS#12
  std::string p12_password; // the password of server_p12
  std::string trust_p12;    // ca only, no key: a PKCS#12 trust store
  std::string other_cert;   // CN=other.test, SAN DNS:other.test (SNI)
  std::string other_key;
  std::string wild_cert; // CN=*.wild.test, SAN DNS:*.wild.test (SNI)
  std::string wild_key;
  std::string rogue_cert; // localhost (same SANs as server_cert), signed by
                          // rogue_ca
  std::string rogue_key;
  std::string expired_cert; // localhost, valid 2020-01-01 to 2020-01-02
  std::string expired_key;
  std::string wrong_host_cert; // CN/SAN wrong.test only
  std::string wrong_host_key;

  // -- clients ----------------------------------------------------------------
  std::string client_cert; // CN=client,O=Example, signed by ca
  std::string client_key;

  // -- broken inputs ----------------------------------------------------------
  std::string mismatched_cert; // server_cert ...
  std::string mismatched_key;  // ... and other_key: a pair that do not match
  std::string empty_file;      // zero bytes
  std::string not_pem;         // plain text, no PEM block
  std::string missing;         // a path that does not exist

  tls_certs() {
    char tmpl[] = "/tmp/tcpactor-tls-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    try {
      generate();
    } catch (...) {
      remove_dir();
      throw;
    }
  }

  ~tls_certs() { remove_dir(); }

  tls_certs(const tls_certs&) = delete;
  tls_certs& operator=(const tls_certs&) = delete;

  /// `dir` + "/" + name.
  std::string path(const std::string& name) const { return dir + "/" + name; }

  /// Writes `content` to `file` (replacing it).
  static void write(const std::string& file, const std::string& content) {
    std::ofstream out{file, std::ios::binary | std::ios::trunc};
    out << content;
    BOOST_TEST_REQUIRE(static_cast<bool>(out), "cannot write " << file);
  }

  /// Replaces `to` with a copy of `from`.
  static void copy(const std::string& from, const std::string& to) {
    std::filesystem::copy_file(
        from, to, std::filesystem::copy_options::overwrite_existing);
  }

  /// Runs `openssl <args>` in `dir`; fails the test with its output if it
  /// exits non-zero.
  void openssl(const std::string& args) const {
    auto cmd = "cd '" + dir + "' && openssl " + args + " 2>&1";
    std::string output;
    auto* p = ::popen(cmd.c_str(), "r");
    BOOST_TEST_REQUIRE(p != nullptr, "popen failed: " << cmd);
    char buf[512];
    while (auto n = std::fread(buf, 1, sizeof(buf), p))
      output.append(buf, n);
    auto status = ::pclose(p);
    BOOST_TEST_REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0),
                       "`openssl " << args << "` failed:\n"
                                   << output);
  }

private:
  void remove_dir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  /// A key and a certificate for `subject`, signed by `issuer` (a prefix
  /// like "ca" naming issuer.pem/issuer.key).
  void leaf(const std::string& name, const std::string& subject,
            const std::string& sans, const std::string& issuer = "ca") {
    openssl("req -x509 " + new_key(name) + " -out " + name + ".pem -subj '" +
            subject + "' -days 365 -CA " + issuer + ".pem -CAkey " + issuer +
            ".key -extensions leaf -addext 'subjectAltName=" + sans + "'");
  }

  static std::string new_key(const std::string& name) {
    return "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -config t.cnf "
           "-keyout " +
           name + ".key";
  }

  void generate() {
    // Our own config: the system one would make leaves CA:TRUE.
    write(path("t.cnf"), R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ca]
default_ca = d
[d]
database = index.txt
serial = serial.txt
new_certs_dir = .
policy = p
default_md = sha256
copy_extensions = copy
unique_subject = no
x509_extensions = leaf
[p]
commonName = supplied
)");
    auto self_signed = [&](const std::string& name, const std::string& cn) {
      openssl("req -x509 " + new_key(name) + " -out " + name + ".pem -subj '" +
              cn + "' -days 3650 -extensions v3_ca");
    };
    self_signed("ca", "/CN=tcpactor test CA");
    self_signed("rogue", "/CN=rogue CA");
    const std::string localhost_sans = "DNS:localhost,IP:127.0.0.1,IP:::1";
    leaf("server", "/O=Example/CN=localhost", localhost_sans);
    leaf("other", "/CN=other.test", "DNS:other.test");
    leaf("wild", "/CN=*.wild.test", "DNS:*.wild.test");
    leaf("client", "/O=Example/CN=client", "DNS:client");
    leaf("rogue_server", "/O=Example/CN=localhost", localhost_sans, "rogue");
    leaf("wrong", "/CN=wrong.test", "DNS:wrong.test");
    // `x509 -days` cannot go back in time; `ca -startdate/-enddate` can.
    openssl("req -new " + new_key("expired") +
            " -out expired.csr -subj '/CN=localhost' -addext "
            "'subjectAltName=" +
            localhost_sans + "'");
    write(path("index.txt"), "");
    write(path("serial.txt"), "1000\n");
    openssl("ca -batch -config t.cnf -cert ca.pem -keyfile ca.key -in "
            "expired.csr -out expired.pem -notext -startdate 20200101000000Z "
            "-enddate 20200102000000Z");
    key_password = "key-secret";
    openssl("pkey -in server.key -aes256 -passout pass:" + key_password +
            " -out server_enc.key");
    openssl("pkey -in server.key -traditional -out server_trad.key");
    p12_password = "p12-secret";
    openssl("pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem "
            "-passout pass:" +
            p12_password + " -out server.p12");
    openssl("pkcs12 -export -nokeys -in ca.pem -passout pass:" + p12_password +
            " -out trust.p12");
    std::filesystem::create_directory(path("cadir"));
    copy(path("ca.pem"), path("cadir/ca.pem"));
    openssl("rehash cadir");
    write(path("empty.pem"), "");
    write(path("not_pem.txt"), "this is not a certificate\n");

    ca = path("ca.pem");
    ca_key = path("ca.key");
    ca_dir = path("cadir");
    rogue_ca = path("rogue.pem");
    server_cert = path("server.pem");
    server_key = path("server.key");
    server_key_encrypted = path("server_enc.key");
    server_key_traditional = path("server_trad.key");
    server_p12 = path("server.p12");
    trust_p12 = path("trust.p12");
    other_cert = path("other.pem");
    other_key = path("other.key");
    wild_cert = path("wild.pem");
    wild_key = path("wild.key");
    rogue_cert = path("rogue_server.pem");
    rogue_key = path("rogue_server.key");
    expired_cert = path("expired.pem");
    expired_key = path("expired.key");
    wrong_host_cert = path("wrong.pem");
    wrong_host_key = path("wrong.key");
    client_cert = path("client.pem");
    client_key = path("client.key");
    mismatched_cert = server_cert;
    mismatched_key = other_key;
    empty_file = path("empty.pem");
    not_pem = path("not_pem.txt");
    missing = path("does-not-exist.pem");
  }
};

/// One set of certificates per test process: making them costs a second.
/// Tests may add files of their own to its directory.
inline tls_certs& shared_certs() {
  static tls_certs instance;
  return instance;
}

/// A listener's TLS settings with the shared server certificate.
inline tls_config server_tls() {
  tls_config x;
  x.enabled = true;
  x.cert_file = shared_certs().server_cert;
  x.key_file = shared_certs().server_key;
  return x;
}

/// A client's TLS settings that trust the shared CA, for "localhost".
inline tls_config client_tls() {
  tls_config x;
  x.enabled = true;
  x.ca_file = shared_certs().ca;
  x.server_name = "localhost";
  return x;
}

} // namespace tcpactor::test
