#pragma once

// Back-end nodes: services that run in other processes (or on other
// machines) and are reached through CAF's middleman (BASP over TCP, or over
// TLS with libcaf_openssl).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_behavior.hpp>

#include "tcpactor/bytes.hpp"

namespace tcpactor {

/// What a back-end node publishes: one reply per chunk (or frame), which the
/// front end writes back to the connection the chunk came from.
using backend_actor = caf::typed_actor<caf::replies_to<bytes>::with<bytes>>;

/// Replies with the chunk itself.
backend_actor::behavior_type echo_backend();

/// Replies with the chunk, ASCII letters in upper case.
backend_actor::behavior_type upper_case_backend();

/// Where a back-end node publishes its service.
struct backend_endpoint {
  std::string host;
  uint16_t port = 0;

  /// "host:port", IPv6 literals in brackets.
  std::string to_string() const;
};

/// Parses "HOST:PORT[,HOST:PORT...]" ("[::1]:PORT" for IPv6); the error
/// (`invalid_config`) names `field` and the bad entry.
caf::expected<std::vector<backend_endpoint>>
parse_backends(std::string_view list, std::string_view field = "backend");

/// How this process talks BASP to other nodes. With `tls`, every link is
/// TLS with a certificate on both ends, each checked against `cafile` (or
/// `capath`): a peer without a certificate that CA signed is refused.
struct node_config {
  /// TLS between nodes (libcaf_openssl). Needs `certificate`, `key` and
  /// `cafile` or `capath`.
  bool tls = false;
  /// PEM certificate (chain) this node presents.
  std::string certificate;
  /// PEM private key of `certificate`.
  std::string key;
  /// Password of an encrypted `key`; empty: none.
  std::string passphrase;
  /// PEM file of the CA(s) that peers' certificates must chain to.
  std::string cafile;
  /// Directory of hashed CA certificates (c_rehash), instead of `cafile`.
  std::string capath;

  /// Names the missing field or the unreadable file.
  caf::error validate() const;
};

/// Prepares `cfg` for a node: loads CAF's middleman (and with `node.tls` the
/// OpenSSL manager with its certificates), registers `bytes` for BASP.
/// Call before constructing the `caf::actor_system`, after
/// `tcpactor::configure`. Returns `node.validate()`'s error, if any.
caf::error configure_node(caf::actor_system_config& cfg,
                          const node_config& node);

/// Publishes `service` on `host:port` (port 0: the kernel picks) over BASP,
/// with TLS if the system was configured with `node_config::tls`. Returns
/// the bound port, or the error naming the address.
caf::expected<uint16_t> publish_backend(caf::actor_system& sys,
                                        const backend_actor& service,
                                        const std::string& host, uint16_t port);

} // namespace tcpactor
