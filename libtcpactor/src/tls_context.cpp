#include "tls_context.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tcpactor/errors.hpp"

namespace tcpactor {

namespace {

// -- small RAII owners --------------------------------------------------------

struct ssl_ctx_free {
  void operator()(SSL_CTX* x) const { SSL_CTX_free(x); }
};
struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
struct pkey_free {
  void operator()(EVP_PKEY* x) const { EVP_PKEY_free(x); }
};
struct bio_free {
  void operator()(BIO* x) const { BIO_free(x); }
};
struct p12_free {
  void operator()(PKCS12* x) const { PKCS12_free(x); }
};

using ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;
using p12_ptr = std::unique_ptr<PKCS12, p12_free>;

// -- error text ---------------------------------------------------------------

caf::error bad(const std::string& field, const std::string& what) {
  return make_error(errc::invalid_config, field + ": " + what);
}

caf::error bad(const std::string& field, const std::string& path,
               const std::string& what) {
  return bad(field, path + ": " + what);
}

// OpenSSL's reasons (without file/line noise), joined; empties the queue so
// that the next failure on this thread starts clean.
std::string drain_errors() {
  std::string out;
  std::vector<std::string> seen;
  const char* data = nullptr;
  int flags = 0;
  while (auto e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    std::string text;
    if (auto* reason = ERR_reason_error_string(e)) {
      text = reason;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof(buf));
      text = buf;
    }
    if ((flags & ERR_TXT_STRING) && data != nullptr && *data != '\0')
      text += std::string{" ("} + data + ")";
    // Decoders retry per format and repeat themselves.
    if (std::find(seen.begin(), seen.end(), text) != seen.end())
      continue;
    if (!out.empty())
      out += "; ";
    out += text;
    seen.push_back(std::move(text));
  }
  return out;
}

// " (reason)" or "" when OpenSSL said nothing.
std::string reason_suffix() {
  auto why = drain_errors();
  return why.empty() ? std::string{} : " (" + why + ")";
}

bool last_error_is(int lib, int reason) {
  auto e = ERR_peek_last_error();
  return ERR_GET_LIB(e) == lib && ERR_GET_REASON(e) == reason;
}

// -- files --------------------------------------------------------------------

// Reads a whole file so that every parse below works on the same bytes and a
// missing, unreadable or empty file gets its own message.
caf::expected<std::string> read_file(const std::string& field,
                                     const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return bad(field, path, std::string{"cannot open: "} + strerror(errno));
  if (S_ISDIR(st.st_mode))
    return bad(field, path, "is a directory, not a file");
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return bad(field, path, std::string{"cannot open: "} + strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad())
    return bad(field, path, std::string{"cannot read: "} + strerror(errno));
  auto content = std::move(buf).str();
  if (content.empty())
    return bad(field, path, "file is empty");
  return content;
}

bio_ptr mem_bio(const std::string& content) {
  return bio_ptr{
      BIO_new_mem_buf(content.data(), static_cast<int>(content.size()))};
}

bool looks_like_pem(const std::string& content) {
  return content.find("-----BEGIN ") != std::string::npos;
}

bool is_der_certificate(const std::string& content) {
  auto* p = reinterpret_cast<const unsigned char*>(content.data());
  x509_ptr x{d2i_X509(nullptr, &p, static_cast<long>(content.size()))};
  ERR_clear_error();
  return x != nullptr;
}

// Every certificate in a PEM file, in order; the first is the leaf when the
// file is a chain.
caf::expected<std::vector<x509_ptr>>
parse_certificates(const std::string& field, const std::string& path,
                   const std::string& content) {
  ERR_clear_error();
  std::vector<x509_ptr> out;
  auto bio = mem_bio(content);
  for (;;) {
    // The _AUX reader keeps trust settings of "TRUSTED CERTIFICATE" blocks.
    x509_ptr x{out.empty()
                   ? PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr)
                   : PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)};
    if (!x)
      break;
    out.push_back(std::move(x));
  }
  // Running out of blocks ends every successful parse with NO_START_LINE.
  bool at_end = last_error_is(ERR_LIB_PEM, PEM_R_NO_START_LINE) ||
                ERR_peek_last_error() == 0;
  if (out.empty()) {
    ERR_clear_error();
    if (!looks_like_pem(content)) {
      if (is_der_certificate(content))
        return bad(field, path,
                   "not PEM: the file is a DER certificate (convert it with "
                   "`openssl x509 -inform DER -in <file> -out <file.pem>`)");
      return bad(field, path,
                 "not PEM: no certificate found (expected '-----BEGIN "
                 "CERTIFICATE-----')");
    }
    return bad(field, path,
               "no certificate found in the PEM file (expected '-----BEGIN "
               "CERTIFICATE-----')");
  }
  if (!at_end)
    return bad(field, path,
               "invalid certificate after the " + std::to_string(out.size()) +
                   ". one" + reason_suffix());
  ERR_clear_error();
  return out;
}

// -- own identity -------------------------------------------------------------

struct password_state {
  const std::string* password;
  bool asked = false;
};

int password_cb(char* buf, int size, int, void* arg) {
  auto* st = static_cast<password_state*>(arg);
  st->asked = true;
  if (st->password->empty() || size <= 0)
    return -1;
  auto n = std::min(st->password->size(), static_cast<std::size_t>(size));
  std::memcpy(buf, st->password->data(), n);
  return static_cast<int>(n);
}

/// Certificate (with chain) and key, parsed once and installed into every
/// context that uses them.
struct identity {
  x509_ptr leaf;
  std::vector<x509_ptr> chain;
  pkey_ptr key;
};

/// The fields naming one identity, for loading and for error messages.
struct identity_source {
  std::string
      prefix; // e.g. "listener.tls" or "listener.tls.sni_certificates[0]"
  std::string cert_file;
  std::string key_file;
  std::string key_password;
  std::string pkcs12_file;
  std::string pkcs12_password;
};

caf::expected<pkey_ptr> load_key(const std::string& field,
                                 const std::string& password_field,
                                 const std::string& path,
                                 const std::string& password) {
  auto content = read_file(field, path);
  if (!content)
    return std::move(content.error());
  ERR_clear_error();
  password_state pw{&password};
  auto bio = mem_bio(*content);
  pkey_ptr key{PEM_read_bio_PrivateKey(bio.get(), nullptr, password_cb, &pw)};
  if (key) {
    ERR_clear_error();
    return key;
  }
  if (pw.asked && password.empty()) {
    ERR_clear_error();
    return bad(field, path, "the key is encrypted; set " + password_field);
  }
  if (pw.asked)
    return bad(field, path,
               "cannot decrypt the key: wrong password in " + password_field +
                   reason_suffix());
  if (!looks_like_pem(*content)) {
    ERR_clear_error();
    return bad(field, path,
               "not PEM: no private key found (expected '-----BEGIN PRIVATE "
               "KEY-----' or a traditional RSA/EC key)");
  }
  // OpenSSL 3's decoders report a PEM file without a key block as
  // "unsupported", so look at the block names ourselves.
  if (last_error_is(ERR_LIB_PEM, PEM_R_NO_START_LINE) ||
      content->find("PRIVATE KEY-----") == std::string::npos) {
    ERR_clear_error();
    return bad(field, path,
               "no private key found in the PEM file (expected '-----BEGIN "
               "PRIVATE KEY-----', 'ENCRYPTED PRIVATE KEY' or a traditional "
               "RSA/EC key)");
  }
  return bad(field, path, "invalid private key" + reason_suffix());
}

caf::expected<identity> load_pem_identity(const identity_source& src) {
  auto cert_field = src.prefix + ".cert_file";
  auto key_field = src.prefix + ".key_file";
  auto content = read_file(cert_field, src.cert_file);
  if (!content)
    return std::move(content.error());
  auto certs = parse_certificates(cert_field, src.cert_file, *content);
  if (!certs)
    return std::move(certs.error());
  identity id;
  id.leaf = std::move(certs->front());
  for (std::size_t i = 1; i < certs->size(); ++i)
    id.chain.push_back(std::move((*certs)[i]));
  auto key = load_key(key_field, src.prefix + ".key_password", src.key_file,
                      src.key_password);
  if (!key)
    return std::move(key.error());
  id.key = std::move(*key);
  if (X509_check_private_key(id.leaf.get(), id.key.get()) != 1) {
    ERR_clear_error();
    return bad(key_field, src.key_file,
               "key does not match the certificate in " + cert_field + " (" +
                   src.cert_file + ")");
  }
  return id;
}

// Reads a PKCS#12 file and checks its password, so that a wrong one is
// reported as such rather than as an unreadable file.
caf::expected<p12_ptr> open_pkcs12(const std::string& field,
                                   const std::string& pw_field,
                                   const std::string& path,
                                   const std::string& pw) {
  auto content = read_file(field, path);
  if (!content)
    return std::move(content.error());
  ERR_clear_error();
  auto bio = mem_bio(*content);
  p12_ptr p12{d2i_PKCS12_bio(bio.get(), nullptr)};
  if (!p12) {
    ERR_clear_error();
    return bad(field, path,
               std::string{"not a PKCS#12 file"} +
                   (looks_like_pem(*content) ? " (it is PEM: use cert_file "
                                               "and key_file instead)"
                                             : ""));
  }
  // An empty password may have been encoded either way; PKCS12_parse tries
  // both, so the MAC check must too.
  bool mac_ok = pw.empty()
                    ? (PKCS12_verify_mac(p12.get(), nullptr, 0) == 1 ||
                       PKCS12_verify_mac(p12.get(), "", 0) == 1)
                    : PKCS12_verify_mac(p12.get(), pw.c_str(),
                                        static_cast<int>(pw.size())) == 1;
  if (!mac_ok) {
    ERR_clear_error();
    return bad(field, path,
               "wrong password in " + pw_field + " (MAC verification failed)");
  }
  return p12;
}

caf::expected<identity> load_pkcs12_identity(const identity_source& src) {
  auto field = src.prefix + ".pkcs12_file";
  auto& path = src.pkcs12_file;
  auto& pw = src.pkcs12_password;
  auto p12 = open_pkcs12(field, src.prefix + ".pkcs12_password", path, pw);
  if (!p12)
    return std::move(p12.error());
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* ca = nullptr;
  if (PKCS12_parse(p12->get(), pw.c_str(), &key, &cert, &ca) != 1)
    return bad(field, path, "cannot read the keystore" + reason_suffix());
  identity id;
  id.key.reset(key);
  id.leaf.reset(cert);
  for (int i = 0; ca != nullptr && i < sk_X509_num(ca); ++i)
    id.chain.emplace_back(sk_X509_value(ca, i));
  sk_X509_free(ca);
  if (!id.leaf)
    return bad(field, path, "the keystore holds no certificate");
  if (!id.key)
    return bad(field, path, "the keystore holds no private key");
  if (X509_check_private_key(id.leaf.get(), id.key.get()) != 1) {
    ERR_clear_error();
    return bad(field, path,
               "the keystore's key does not match its certificate");
  }
  return id;
}

caf::expected<identity> load_identity(const identity_source& src) {
  return src.pkcs12_file.empty() ? load_pem_identity(src)
                                 : load_pkcs12_identity(src);
}

caf::error install_identity(SSL_CTX* ctx, const identity& id,
                            const std::string& field) {
  if (SSL_CTX_use_certificate(ctx, id.leaf.get()) != 1)
    return bad(field, "cannot use the certificate" + reason_suffix());
  for (auto& x : id.chain)
    if (SSL_CTX_add1_chain_cert(ctx, x.get()) != 1)
      return bad(field, "cannot use a chain certificate" + reason_suffix());
  if (SSL_CTX_use_PrivateKey(ctx, id.key.get()) != 1)
    return bad(field, "cannot use the private key" + reason_suffix());
  if (SSL_CTX_check_private_key(ctx) != 1)
    return bad(field, "key does not match the certificate" + reason_suffix());
  return caf::none;
}

// -- trusted CAs --------------------------------------------------------------

struct trust {
  std::vector<x509_ptr> cas; // from ca_file, ca_dir and trust_store_file
  // From ca_file and trust_store_file: names sent to clients.
  std::vector<x509_ptr> client_ca_list;
};

// Reads every certificate of ca_dir now instead of letting OpenSSL look them
// up by hash during handshakes: no file is touched per handshake, a broken
// directory fails at start, and reload() picks up changes.
caf::error load_ca_dir(const std::string& field, const std::string& dir,
                       std::vector<x509_ptr>& out) {
  namespace fs = std::filesystem;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    return bad(field, dir, std::string{"cannot open: "} + strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return bad(field, dir, "is not a directory");
  if (::access(dir.c_str(), R_OK | X_OK) != 0)
    return bad(field, dir, std::string{"cannot read: "} + strerror(errno));
  std::error_code ec;
  std::size_t found = 0;
  std::vector<std::string> files;
  for (auto it = fs::directory_iterator{dir, ec};
       !ec && it != fs::directory_iterator{}; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_regular_file(ec2))
      files.push_back(it->path().string());
  }
  if (ec)
    return bad(field, dir, "cannot list: " + ec.message());
  std::sort(files.begin(), files.end());
  for (auto& file : files) {
    std::ifstream in{file, std::ios::binary};
    if (!in)
      return bad(field, dir,
                 "cannot read " + file + ": " + std::string{strerror(errno)});
    std::ostringstream buf;
    buf << in.rdbuf();
    auto content = std::move(buf).str();
    // Hash links, CRLs and notes live here too; only certificates count.
    if (!looks_like_pem(content))
      continue;
    auto bio = mem_bio(content);
    while (auto* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      out.emplace_back(x);
      ++found;
    }
    ERR_clear_error();
  }
  if (found == 0)
    return bad(field, dir, "contains no PEM CA certificate");
  return caf::none;
}

caf::expected<trust> load_trust(const tls_config& cfg,
                                const std::string& prefix) {
  trust t;
  if (!cfg.ca_file.empty()) {
    auto field = prefix + ".ca_file";
    auto content = read_file(field, cfg.ca_file);
    if (!content)
      return std::move(content.error());
    auto certs = parse_certificates(field, cfg.ca_file, *content);
    if (!certs)
      return std::move(certs.error());
    for (auto& x : *certs) {
      X509_up_ref(x.get());
      t.client_ca_list.emplace_back(x.get());
      t.cas.push_back(std::move(x));
    }
  }
  if (!cfg.ca_dir.empty())
    if (auto err = load_ca_dir(prefix + ".ca_dir", cfg.ca_dir, t.cas))
      return err;
  if (!cfg.trust_store_file.empty()) {
    auto field = prefix + ".trust_store_file";
    auto& path = cfg.trust_store_file;
    auto& pw = cfg.trust_store_password;
    auto p12 = open_pkcs12(field, prefix + ".trust_store_password", path, pw);
    if (!p12)
      return std::move(p12.error());
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
    STACK_OF(X509)* ca = nullptr;
    if (PKCS12_parse(p12->get(), pw.c_str(), &key, &cert, &ca) != 1)
      return bad(field, path, "cannot read the trust store" + reason_suffix());
    // A trust store holds certificates only; a key in it is a keystore
    // given by mistake, and trusting its own leaf would be wrong.
    bool has_key = key != nullptr;
    EVP_PKEY_free(key);
    std::vector<x509_ptr> certs;
    if (cert != nullptr)
      certs.emplace_back(cert);
    for (int i = 0; ca != nullptr && i < sk_X509_num(ca); ++i)
      certs.emplace_back(sk_X509_value(ca, i));
    sk_X509_free(ca);
    if (has_key)
      return bad(field, path,
                 "holds a private key: a trust store holds CA certificates "
                 "only (a keystore goes in pkcs12_file)");
    if (certs.empty())
      return bad(field, path, "the trust store holds no certificate");
    for (auto& x : certs) {
      X509_up_ref(x.get());
      t.client_ca_list.emplace_back(x.get());
      t.cas.push_back(std::move(x));
    }
  }
  return t;
}

caf::error install_trust(SSL_CTX* ctx, const trust& t, bool send_ca_list,
                         const std::string& prefix) {
  auto* store = SSL_CTX_get_cert_store(ctx);
  for (auto& x : t.cas)
    if (X509_STORE_add_cert(store, x.get()) != 1)
      return bad(prefix + ".ca_file",
                 "cannot add a CA certificate" + reason_suffix());
  if (send_ca_list && !t.client_ca_list.empty()) {
    auto* names = sk_X509_NAME_new_null();
    for (auto& x : t.client_ca_list)
      if (auto* n = X509_NAME_dup(X509_get_subject_name(x.get())))
        sk_X509_NAME_push(names, n);
    SSL_CTX_set_client_CA_list(ctx, names); // takes ownership
  }
  return caf::none;
}

// -- protocol -----------------------------------------------------------------

int version_of(const std::string& name) {
  if (name == "TLSv1")
    return TLS1_VERSION;
  if (name == "TLSv1.1")
    return TLS1_1_VERSION;
  if (name == "TLSv1.2")
    return TLS1_2_VERSION;
  if (name == "TLSv1.3")
    return TLS1_3_VERSION;
  return -1;
}

// OpenSSL's cipher-string keywords (ssl_ciph.c, cipher_aliases, 3.0). A
// keyword may select nothing in this build ("!RC4" without the legacy
// provider) and is still no typo.
bool is_cipher_keyword(const std::string& x) {
  static const char* const words[] = {
      "ALL",
      "COMPLEMENTOFALL",
      "COMPLEMENTOFDEFAULT",
      "DEFAULT",
      "kRSA",
      "kEDH",
      "kDHE",
      "DH",
      "kEECDH",
      "kECDHE",
      "ECDH",
      "kPSK",
      "kRSAPSK",
      "kECDHEPSK",
      "kDHEPSK",
      "kSRP",
      "kGOST",
      "kGOST18",
      "aRSA",
      "aDSS",
      "DSS",
      "aNULL",
      "aECDSA",
      "ECDSA",
      "aPSK",
      "aGOST01",
      "aGOST12",
      "aGOST",
      "aSRP",
      "EDH",
      "DHE",
      "EECDH",
      "ECDHE",
      "NULL",
      "RSA",
      "ADH",
      "AECDH",
      "PSK",
      "SRP",
      "3DES",
      "RC4",
      "RC2",
      "IDEA",
      "SEED",
      "eNULL",
      "GOST89",
      "AES128",
      "AES256",
      "AES",
      "AESGCM",
      "AESCCM",
      "AESCCM8",
      "CAMELLIA128",
      "CAMELLIA256",
      "CAMELLIA",
      "CHACHA20",
      "ARIA",
      "ARIAGCM",
      "ARIA128",
      "ARIA256",
      "MD5",
      "SHA1",
      "SHA",
      "GOST94",
      "GOST89MAC",
      "SHA256",
      "SHA384",
      "GOST12",
      "SSLv3",
      "TLSv1",
      "TLSv1.0",
      "TLSv1.2",
      "LOW",
      "MEDIUM",
      "HIGH",
      "FIPS",
      "EXP",
      "EXPORT",
      "DES",
  };
  return std::any_of(std::begin(words), std::end(words),
                     [&](const char* w) { return x == w; });
}

std::vector<std::string> split(const std::string& text, const char* seps) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : text) {
    if (std::strchr(seps, ch) != nullptr) {
      if (!cur.empty())
        out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!cur.empty())
    out.push_back(std::move(cur));
  return out;
}

// IANA (RFC) names, as Java, Go and Ballerina spell ciphers
// ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), become OpenSSL's
// ("ECDHE-RSA-AES128-GCM-SHA256"); everything else stays as written. TLS 1.3
// suite names are the same in both and stay, so the check below still says
// where they belong.
std::string openssl_cipher_names(const std::string& list) {
  std::string out;
  for (auto& entry : split(list, ":, ;")) {
    std::size_t at =
        entry.front() == '!' || entry.front() == '-' || entry.front() == '+'
            ? 1
            : 0;
    auto body = entry.substr(at);
    if (body.rfind("TLS_", 0) == 0 || body.rfind("SSL_", 0) == 0) {
      auto* name = OPENSSL_cipher_name(body.c_str());
      if (name != nullptr && std::strcmp(name, "(NONE)") != 0)
        body = name;
    }
    if (!out.empty())
      out += ':';
    out += entry.substr(0, at) + body;
  }
  return out;
}

// SSL_CTX_set_cipher_list only fails when nothing at all matched and drops
// unknown names silently, so each name is tried on its own first.
caf::error check_cipher_list(SSL_CTX* scratch, const std::string& list,
                             const std::string& field) {
  for (auto& entry : split(list, ":, ;")) {
    if (entry.front() == '@')
      continue; // @STRENGTH, @SECLEVEL=n: checked with the whole list
    bool negated = entry.front() == '!' || entry.front() == '-';
    auto body = (negated || entry.front() == '+') ? entry.substr(1) : entry;
    for (auto& part : split(body, "+")) {
      if (SSL_CTX_set_cipher_list(scratch, part.c_str()) == 1)
        continue;
      ERR_clear_error();
      if (is_cipher_keyword(part)) {
        if (negated)
          continue;
        return bad(field, "'" + part +
                              "' selects no cipher this OpenSSL build "
                              "enables");
      }
      if (part.rfind("TLS_", 0) == 0)
        return bad(field, "unknown cipher '" + part +
                              "' (TLS 1.3 suites belong in ciphersuites)");
      return bad(field, "unknown cipher '" + part + "'");
    }
  }
  return caf::none;
}

// SSL_CTX_set_ciphersuites skips unknown names without a word, so each name
// must select one TLS 1.3 suite on its own.
caf::error check_ciphersuites(SSL_CTX* scratch, const std::string& list,
                              const std::string& field) {
  for (auto& name : split(list, ":")) {
    bool found = false;
    if (SSL_CTX_set_ciphersuites(scratch, name.c_str()) == 1) {
      auto* ciphers = SSL_CTX_get_ciphers(scratch);
      for (int i = 0; ciphers != nullptr && i < sk_SSL_CIPHER_num(ciphers); ++i)
        if (name == SSL_CIPHER_get_name(sk_SSL_CIPHER_value(ciphers, i)))
          found = true;
    }
    ERR_clear_error();
    if (!found)
      return bad(field, "unknown TLS 1.3 ciphersuite '" + name + "'");
  }
  return caf::none;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string lower(std::string x) {
  for (auto& ch : x)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return x;
}

// "*.example.com" matches exactly one label in front of ".example.com".
bool host_matches(const std::string& pattern, const std::string& name) {
  if (pattern.rfind("*.", 0) != 0)
    return pattern == name;
  auto suffix = pattern.substr(1); // ".example.com"
  if (name.size() <= suffix.size() ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  auto label = name.substr(0, name.size() - suffix.size());
  return label.find('.') == std::string::npos;
}

constexpr std::size_t max_cached_sessions = 1024;

const unsigned char session_id_context[] = "tcpactor";

// -- shared state of the SSL_CTXs ---------------------------------------------

// What the OpenSSL callbacks need. The default SSL_CTX owns it (ex_data), so
// it lives exactly as long as any SSL made from this context: handshakes and
// TLS 1.3 tickets that outlive a reload still find it.
struct tls_state {
  std::vector<std::string> alpn; // server preference order
  struct sni_entry {
    std::string pattern; // lower case
    SSL_CTX* ctx;
  };
  std::vector<sni_entry> sni; // owned (SSL_CTX_free in the destructor)

  std::mutex mtx;
  struct cached {
    SSL_SESSION* session;
    uint64_t seq;
  };
  std::map<std::string, cached> sessions;
  uint64_t next_seq = 0;

  ~tls_state() {
    for (auto& x : sni)
      SSL_CTX_free(x.ctx);
    for (auto& [key, x] : sessions)
      SSL_SESSION_free(x.session);
  }

  /// Takes over one reference to `s`.
  void store(const std::string& key, SSL_SESSION* s) {
    std::lock_guard<std::mutex> guard{mtx};
    auto i = sessions.find(key);
    if (i != sessions.end()) {
      SSL_SESSION_free(i->second.session);
      i->second = cached{s, next_seq++};
      return;
    }
    if (sessions.size() >= max_cached_sessions) {
      auto oldest = std::min_element(
          sessions.begin(), sessions.end(),
          [](auto& x, auto& y) { return x.second.seq < y.second.seq; });
      SSL_SESSION_free(oldest->second.session);
      sessions.erase(oldest);
    }
    sessions.emplace(key, cached{s, next_seq++});
  }

  /// A new reference to the session for `key`, or nullptr.
  SSL_SESSION* find(const std::string& key) {
    std::lock_guard<std::mutex> guard{mtx};
    auto i = sessions.find(key);
    if (i == sessions.end())
      return nullptr;
    // OpenSSL marks a session unusable when its connection was freed
    // without close_notify (SSL_shutdown); offering it would be pointless.
    if (SSL_SESSION_is_resumable(i->second.session) != 1) {
      SSL_SESSION_free(i->second.session);
      sessions.erase(i);
      return nullptr;
    }
    SSL_SESSION_up_ref(i->second.session);
    return i->second.session;
  }
};

void free_owned_state(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<tls_state*>(ptr);
}

void free_session_key(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::string*>(ptr);
}

// Every SSL_CTX of one context points at the state; only the default one
// owns it (an SNI context must not, or the state would own itself).
int state_index() {
  static const int idx =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

int owner_index() {
  static const int idx =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_owned_state);
  return idx;
}

// "host:port" of a client SSL, for the new-session callback.
int session_key_index() {
  static const int idx =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_session_key);
  return idx;
}

tls_state* state_of(SSL_CTX* ctx) {
  return static_cast<tls_state*>(SSL_CTX_get_ex_data(ctx, state_index()));
}

std::string session_key(const std::string& host, uint16_t port) {
  return host + ":" + std::to_string(port);
}

// TLS 1.3 sends tickets after the handshake, so sessions are collected here
// rather than only in save_session.
int on_new_session(SSL* ssl, SSL_SESSION* s) {
  auto* key =
      static_cast<std::string*>(SSL_get_ex_data(ssl, session_key_index()));
  auto* st = state_of(SSL_get_SSL_CTX(ssl));
  if (key == nullptr || st == nullptr || SSL_SESSION_is_resumable(s) != 1)
    return 0;
  st->store(*key, s);
  return 1; // we keep the reference OpenSSL handed us
}

// No overlap: carry on without ALPN instead of failing the handshake, so
// that clients which offer other protocols still reach a server that can
// tell them so at the application layer.
int on_alpn_select(SSL*, const unsigned char** out, unsigned char* outlen,
                   const unsigned char* in, unsigned int inlen, void* arg) {
  auto* st = static_cast<tls_state*>(arg);
  for (auto& want : st->alpn) {
    for (unsigned int i = 0; i < inlen;) {
      unsigned int len = in[i];
      if (i + 1 + len > inlen)
        break;
      if (len == want.size() &&
          std::memcmp(in + i + 1, want.data(), len) == 0) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + len;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

int on_servername(SSL* ssl, int*, void* arg) {
  auto* st = static_cast<tls_state*>(arg);
  const char* sent = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (sent == nullptr || *sent == '\0')
    return SSL_TLSEXT_ERR_OK;
  auto name = lower(sent);
  if (name.back() == '.')
    name.pop_back();
  SSL_CTX* hit = nullptr;
  // Exact names win over wildcards, whatever the configured order.
  for (auto& x : st->sni)
    if (x.pattern == name) {
      hit = x.ctx;
      break;
    }
  if (hit == nullptr)
    for (auto& x : st->sni)
      if (host_matches(x.pattern, name)) {
        hit = x.ctx;
        break;
      }
  if (hit != nullptr)
    SSL_set_SSL_CTX(ssl, hit);
  return SSL_TLSEXT_ERR_OK;
}

/// Everything but the identity, shared by the default and the SNI contexts.
caf::error configure(SSL_CTX* ctx, SSL_CTX* scratch, const tls_config& cfg,
                     tls_context::role r, const std::string& prefix,
                     const trust& t, tls_state* st) {
  auto p = prefix + ".";
  bool server = r == tls_context::role::server;
  SSL_CTX_set_ex_data(ctx, state_index(), st);
  // Renegotiation is a DoS lever and nothing here needs it.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                               (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  // Idle connections should not hold 2 x 16 KiB of record buffers.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (!cfg.min_version.empty()) {
    auto v = version_of(cfg.min_version);
    if (v < 0 || SSL_CTX_set_min_proto_version(ctx, v) != 1)
      return bad(p + "min_version", "'" + cfg.min_version +
                                        "' is not supported" + reason_suffix());
  }
  if (!cfg.max_version.empty()) {
    auto v = version_of(cfg.max_version);
    if (v < 0 || SSL_CTX_set_max_proto_version(ctx, v) != 1)
      return bad(p + "max_version", "'" + cfg.max_version +
                                        "' is not supported" + reason_suffix());
  }
  if (!cfg.ciphers.empty()) {
    auto ciphers = openssl_cipher_names(cfg.ciphers);
    if (auto err = check_cipher_list(scratch, ciphers, p + "ciphers"))
      return err;
    if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1)
      return bad(p + "ciphers",
                 "'" + cfg.ciphers + "' selects no cipher" + reason_suffix());
  }
  if (!cfg.ciphersuites.empty()) {
    if (auto err =
            check_ciphersuites(scratch, cfg.ciphersuites, p + "ciphersuites"))
      return err;
    if (SSL_CTX_set_ciphersuites(ctx, cfg.ciphersuites.c_str()) != 1)
      return bad(p + "ciphersuites",
                 "'" + cfg.ciphersuites + "' is invalid" + reason_suffix());
  }
  // OpenSSL 3 refuses TLS 1.0/1.1 at security level 1 and above (their PRF
  // needs MD5/SHA-1), so an explicit request for them would otherwise fail
  // every handshake. Asking for TLSv1 or TLSv1.1 is taken as accepting level
  // 0, unless the cipher string sets its own @SECLEVEL.
  auto minv = version_of(cfg.min_version);
  if (minv > 0 && minv < TLS1_2_VERSION &&
      cfg.ciphers.find("@SECLEVEL") == std::string::npos)
    SSL_CTX_set_security_level(ctx, 0);
  if (auto err = install_trust(
          ctx, t, server && cfg.verify_client != tls_config::client_auth::none,
          prefix))
    return err;
  if (cfg.trust_partial_chain)
    X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx),
                         X509_V_FLAG_PARTIAL_CHAIN);
  if (server) {
    int mode = SSL_VERIFY_NONE;
    if (cfg.verify_client == tls_config::client_auth::request)
      mode = SSL_VERIFY_PEER;
    else if (cfg.verify_client == tls_config::client_auth::require)
      mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
    // Also needed on SNI contexts: SSL_set_SSL_CTX copies it.
    SSL_CTX_set_session_id_context(ctx, session_id_context,
                                   sizeof(session_id_context) - 1);
    auto timeout = static_cast<long>(cfg.session_timeout.count());
    SSL_CTX_set_timeout(ctx, timeout);
    if (cfg.session_resumption) {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
      SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    } else {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
      // Without this TLS 1.3 still sends (useless) stateful tickets.
      SSL_CTX_set_num_tickets(ctx, 0);
    }
    if (!cfg.alpn.empty())
      SSL_CTX_set_alpn_select_cb(ctx, on_alpn_select, st);
  } else {
    SSL_CTX_set_verify(ctx, cfg.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       nullptr);
    if (cfg.verify_peer && t.cas.empty() &&
        SSL_CTX_set_default_verify_paths(ctx) != 1)
      return bad(p + "ca_file", "no ca_file, ca_dir or trust_store_file set "
                                "and the system "
                                "trust store cannot be loaded" +
                                    reason_suffix());
    SSL_CTX_set_timeout(ctx, static_cast<long>(cfg.session_timeout.count()));
    if (cfg.session_resumption) {
      // OpenSSL's internal client cache is keyed by nothing useful; ours is
      // keyed by host:port.
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                              SSL_SESS_CACHE_NO_INTERNAL_STORE);
      SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    } else {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
    if (!cfg.alpn.empty()) {
      std::string wire;
      for (auto& x : cfg.alpn) {
        wire += static_cast<char>(x.size());
        wire += x;
      }
      // Note: returns 0 on success.
      if (SSL_CTX_set_alpn_protos(
              ctx, reinterpret_cast<const unsigned char*>(wire.data()),
              static_cast<unsigned int>(wire.size())) != 0)
        return bad(p + "alpn", "rejected by OpenSSL" + reason_suffix());
    }
  }
  return caf::none;
}

ctx_ptr new_ctx(tls_context::role r) {
  return ctx_ptr{SSL_CTX_new(r == tls_context::role::server
                                 ? TLS_server_method()
                                 : TLS_client_method())};
}

} // namespace

// -- tls_context --------------------------------------------------------------

namespace {

/// notAfter of the certificate installed in `ctx`, as Unix time (0 if none).
int64_t not_after_of(SSL_CTX* ctx) {
  auto* leaf = SSL_CTX_get0_certificate(ctx);
  std::tm tm{};
  if (leaf == nullptr || ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) != 1)
    return 0;
  return static_cast<int64_t>(timegm(&tm));
}

} // namespace

struct tls_context::impl {
  tls_config cfg;
  role r = role::server;
  SSL_CTX* ctx = nullptr; // one reference; owns the tls_state
  tls_state* st = nullptr;
  std::vector<served_certificate> certs;

  ~impl() { SSL_CTX_free(ctx); }
};

tls_context::tls_context(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
  // nop
}

tls_context::~tls_context() = default;

caf::expected<std::shared_ptr<tls_context>>
tls_context::make(const tls_config& cfg, role r, const std::string& prefix) {
  ERR_clear_error();
  auto p = prefix + ".";
  // make() is only called for TLS, so check as if enabled.
  auto checked = cfg;
  checked.enabled = true;
  if (auto err = checked.validate(prefix))
    return err;
  bool server = r == role::server;
  if (server && cfg.cert_file.empty() && cfg.pkcs12_file.empty())
    return bad(p + "cert_file",
               "a certificate (cert_file and key_file, or pkcs12_file) is "
               "required when TLS is enabled on a listener");
  if (server && cfg.verify_client != tls_config::client_auth::none &&
      cfg.ca_file.empty() && cfg.ca_dir.empty() && cfg.trust_store_file.empty())
    return bad(p + "ca_file",
               "a CA (ca_file, ca_dir or trust_store_file) is required to "
               "verify client certificates (verify_client is not none)");
  auto scratch = new_ctx(r);
  auto ctx = new_ctx(r);
  std::vector<served_certificate> certs;
  if (!scratch || !ctx)
    return bad(prefix, "cannot create an SSL context" + reason_suffix());
  auto st = std::make_unique<tls_state>();
  if (server)
    st->alpn = cfg.alpn;
  auto t = load_trust(cfg, prefix);
  if (!t)
    return std::move(t.error());
  if (auto err =
          configure(ctx.get(), scratch.get(), cfg, r, prefix, *t, st.get()))
    return err;
  identity_source own{prefix,           cfg.cert_file,   cfg.key_file,
                      cfg.key_password, cfg.pkcs12_file, cfg.pkcs12_password};
  if (!cfg.cert_file.empty() || !cfg.pkcs12_file.empty()) {
    auto id = load_identity(own);
    if (!id)
      return std::move(id.error());
    auto field = p + (cfg.pkcs12_file.empty() ? "cert_file" : "pkcs12_file");
    if (auto err = install_identity(ctx.get(), *id, field))
      return err;
    certs.push_back({cfg.pkcs12_file.empty() ? cfg.cert_file : cfg.pkcs12_file,
                     {},
                     not_after_of(ctx.get())});
  }
  if (server) {
    for (std::size_t i = 0; i < cfg.sni_certificates.size(); ++i) {
      auto& x = cfg.sni_certificates[i];
      auto q = p + "sni_certificates[" + std::to_string(i) + "]";
      auto sub = new_ctx(r);
      if (!sub)
        return bad(q, "cannot create an SSL context" + reason_suffix());
      if (auto err =
              configure(sub.get(), scratch.get(), cfg, r, prefix, *t, st.get()))
        return err;
      auto id = load_identity(
          identity_source{q, x.cert_file, x.key_file, x.key_password, {}, {}});
      if (!id)
        return std::move(id.error());
      if (auto err = install_identity(sub.get(), *id, q + ".cert_file"))
        return err;
      certs.push_back({x.cert_file, x.host, not_after_of(sub.get())});
      st->sni.push_back({lower(x.host), sub.release()});
    }
    if (!st->sni.empty()) {
      SSL_CTX_set_tlsext_servername_callback(ctx.get(), on_servername);
      SSL_CTX_set_tlsext_servername_arg(ctx.get(), st.get());
    }
  }
  // From here on the default context owns the state.
  auto* raw_state = st.release();
  SSL_CTX_set_ex_data(ctx.get(), owner_index(), raw_state);
  ERR_clear_error();
  auto ptr = std::make_unique<impl>();
  ptr->cfg = cfg;
  ptr->r = r;
  ptr->ctx = ctx.release();
  ptr->st = raw_state;
  ptr->certs = std::move(certs);
  return std::shared_ptr<tls_context>{new tls_context(std::move(ptr))};
}

SSL* tls_context::new_server() const {
  auto* ssl = SSL_new(impl_->ctx);
  if (ssl != nullptr)
    SSL_set_accept_state(ssl);
  return ssl;
}

SSL* tls_context::new_client(const std::string& host, uint16_t port) const {
  auto* ssl = SSL_new(impl_->ctx);
  if (ssl == nullptr)
    return nullptr;
  SSL_set_connect_state(ssl);
  auto& cfg = impl_->cfg;
  auto name = cfg.server_name.empty() ? host : cfg.server_name;
  // "[::1]" is how users write IPv6 hosts next to a port.
  if (name.size() > 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  bool ip = is_ip_literal(name);
  bool ok = true;
  if (cfg.send_sni && !ip && !name.empty())
    ok = SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
  if (ok && cfg.verify_peer) {
    auto* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param,
                                    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1
            : SSL_set1_host(ssl, name.c_str()) == 1;
  }
  if (!ok) {
    SSL_free(ssl);
    return nullptr;
  }
  if (cfg.session_resumption) {
    auto key = session_key(host, port);
    if (auto* s = impl_->st->find(key)) {
      SSL_set_session(ssl, s); // takes its own reference
      SSL_SESSION_free(s);
    }
    SSL_set_ex_data(ssl, session_key_index(), new std::string(std::move(key)));
  }
  return ssl;
}

void tls_context::save_session(SSL* ssl, const std::string& host,
                               uint16_t port) const {
  if (ssl == nullptr || !impl_->cfg.session_resumption)
    return;
  auto* s = SSL_get1_session(ssl);
  if (s == nullptr)
    return;
  // A TLS 1.3 session is resumable only once its ticket arrived; until
  // then the new-session callback will deliver it.
  if (SSL_SESSION_is_resumable(s) != 1) {
    SSL_SESSION_free(s);
    return;
  }
  impl_->st->store(session_key(host, port), s);
}

tls_info tls_context::info(SSL* ssl) {
  tls_info out;
  if (ssl == nullptr)
    return out;
  out.version = SSL_get_version(ssl);
  if (auto* c = SSL_get_cipher_name(ssl))
    out.cipher = c;
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  if (alpn != nullptr)
    out.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  if (auto* sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name))
    out.server_name = sn;
  out.resumed = SSL_session_reused(ssl) == 1;
  auto* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr)
    return out;
  if (bio_ptr bio{BIO_new(BIO_s_mem())}) {
    // RFC 2253 order ("CN=client,O=Example"), UTF-8 kept readable.
    X509_NAME_print_ex(bio.get(), X509_get_subject_name(peer), 0,
                       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    auto n = BIO_get_mem_data(bio.get(), &data);
    if (n > 0)
      out.peer_subject.assign(data, static_cast<std::size_t>(n));
  }
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    auto* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_DNS) {
      auto* s = gn->d.dNSName;
      out.peer_sans.emplace_back(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
          static_cast<std::size_t>(ASN1_STRING_length(s)));
    } else if (gn->type == GEN_IPADD) {
      auto* s = gn->d.iPAddress;
      char buf[INET6_ADDRSTRLEN] = {};
      auto len = ASN1_STRING_length(s);
      int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
      if (af != 0 &&
          inet_ntop(af, ASN1_STRING_get0_data(s), buf, sizeof(buf)) != nullptr)
        out.peer_sans.emplace_back(buf);
    }
  }
  GENERAL_NAMES_free(names);
  ERR_clear_error();
  return out;
}

std::string tls_context::last_error(SSL* ssl) {
  auto queue = drain_errors();
  std::string out;
  if (ssl != nullptr) {
    auto res = SSL_get_verify_result(ssl);
    if (res != X509_V_OK) {
      out = std::string{"certificate verify failed: "} +
            X509_verify_cert_error_string(res);
      // The queue repeats it as a bare "certificate verify failed".
      if (queue == "certificate verify failed")
        queue.clear();
    }
  }
  if (!queue.empty())
    out += (out.empty() ? "" : "; ") + queue;
  return out.empty() ? std::string{"handshake failed"} : out;
}

const tls_config& tls_context::config() const noexcept {
  return impl_->cfg;
}

const std::vector<tls_context::served_certificate>&
tls_context::certificates() const noexcept {
  return impl_->certs;
}

// -- tls_context_holder -------------------------------------------------------

tls_context_holder::tls_context_holder(std::shared_ptr<tls_context> ctx,
                                       tls_config cfg, tls_context::role r,
                                       std::string prefix)
    : ctx_(std::move(ctx)), cfg_(std::move(cfg)), role_(r),
      prefix_(std::move(prefix)) {
  // nop
}

std::shared_ptr<tls_context> tls_context_holder::get() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return ctx_;
}

caf::error tls_context_holder::reload() {
  // Built outside the lock: loading files must not stall handshakes.
  auto fresh = tls_context::make(cfg_, role_, prefix_);
  if (!fresh)
    return std::move(fresh.error());
  std::lock_guard<std::mutex> guard{mtx_};
  ctx_ = std::move(*fresh);
  return caf::none;
}

} // namespace tcpactor
