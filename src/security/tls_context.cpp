#include "security/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <stdexcept>

#include "base/text.hpp"

namespace galaxies::security {
namespace {

std::runtime_error bad(const std::string& what, const std::string& path, const std::string& why) {
  return std::runtime_error("TLS " + what + " '" + base::printable(path, 200) + "': " + why);
}

}  // namespace

std::shared_ptr<asio::ssl::context> make_tls_context(const tls_files& files) {
  if (files.cert.empty() || files.key.empty() || files.ca.empty())
    throw std::runtime_error("TLS needs all three of --tls-cert, --tls-key and --tls-ca");
  // The private key must not be readable by other users, as with the cluster secret.
  struct stat st {};
  if (::stat(files.key.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    throw bad("key", files.key, "readable by other users; run: chmod 600 on it");

  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(native, TLS1_3_VERSION);
  std::error_code ec;
  context->use_certificate_chain_file(files.cert, ec);
  if (ec) throw bad("certificate", files.cert, ec.message());
  context->use_private_key_file(files.key, asio::ssl::context::pem, ec);
  if (ec) throw bad("key", files.key, ec.message());
  if (SSL_CTX_check_private_key(native) != 1)
    throw bad("key", files.key, "does not match the certificate " + files.cert);
  context->load_verify_file(files.ca, ec);
  if (ec) throw bad("CA", files.ca, ec.message());
  context->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  return context;
}

}  // namespace galaxies::security
