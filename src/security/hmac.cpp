#include "security/hmac.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace galaxies::security {
namespace {

struct mac_deleter {
  void operator()(EVP_MAC* mac) const noexcept { EVP_MAC_free(mac); }
  void operator()(EVP_MAC_CTX* ctx) const noexcept { EVP_MAC_CTX_free(ctx); }
};

const unsigned char* bytes_of(std::span<const std::byte> s) noexcept {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

digest hmac_sha256(std::span<const std::byte> key,
                   std::initializer_list<std::span<const std::byte>> parts) {
  // Fetched once: the lookup walks OpenSSL's provider tables, the context is cheap.
  static const std::unique_ptr<EVP_MAC, mac_deleter> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!mac) throw std::runtime_error("OpenSSL provides no HMAC");
  std::unique_ptr<EVP_MAC_CTX, mac_deleter> ctx(EVP_MAC_CTX_new(mac.get()));
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end()};
  digest out{};
  std::size_t written = 0;
  bool ok = ctx && EVP_MAC_init(ctx.get(), bytes_of(key), key.size(), params) == 1;
  for (const auto& part : parts)
    ok = ok && EVP_MAC_update(ctx.get(), bytes_of(part), part.size()) == 1;
  ok = ok && EVP_MAC_final(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &written,
                           out.size()) == 1;
  if (!ok || written != out.size()) throw std::runtime_error("HMAC-SHA256 failed in OpenSSL");
  return out;
}

bool same_digest(const digest& expected, std::span<const std::byte> found) noexcept {
  return found.size() == expected.size() &&
         CRYPTO_memcmp(expected.data(), found.data(), expected.size()) == 0;
}

void random_bytes(std::span<std::byte> out) {
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size())) != 1)
    throw std::runtime_error("OpenSSL could not produce random bytes");
}

}  // namespace galaxies::security
