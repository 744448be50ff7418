// The TLS 1.3 configuration of host links: one certificate and key per host, one CA that every
// host's certificate must chain to, verified in both directions (docs/security.md).
#pragma once

#include <asio/ssl/context.hpp>
#include <memory>
#include <string>

namespace galaxies::security {

struct tls_files {
  std::string cert;  // PEM: this host's certificate (chain)
  std::string key;   // PEM: its private key
  std::string ca;    // PEM: the CA that signs every host's certificate
};

// A context for both ends (client when dialling, server when accepting): TLS 1.3 only, the peer's
// certificate required and verified against `ca`. Throws std::runtime_error naming the file that
// could not be used and why.
std::shared_ptr<asio::ssl::context> make_tls_context(const tls_files& files);

}  // namespace galaxies::security
