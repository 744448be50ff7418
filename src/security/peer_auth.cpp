#include "security/peer_auth.hpp"

#include <string_view>

namespace galaxies::security {
namespace {

// The label ends with a NUL so that neither can be a prefix of the other's input.
constexpr std::string_view dialler_label{"galaxies host-auth v1 dialler\0", 30};
constexpr std::string_view acceptor_label{"galaxies host-auth v1 acceptor\0", 31};

std::span<const std::byte> bytes_of(std::string_view text) noexcept {
  return std::as_bytes(std::span(text.data(), text.size()));
}

}  // namespace

nonce make_nonce() {
  nonce n;
  random_bytes(n);
  return n;
}

// The frames are self-delimiting (their header holds their size), the nonce has a fixed size,
// and the binding's length is written before it: no two transcripts concatenate alike.
digest dialler_proof(std::span<const std::byte> secret, std::span<const std::byte> hello_frame,
                     const nonce& challenge, std::span<const std::byte> tls_binding) {
  const std::byte binding_size{static_cast<unsigned char>(tls_binding.size())};
  return hmac_sha256(secret, {bytes_of(dialler_label), hello_frame, challenge,
                              std::span(&binding_size, 1), tls_binding});
}

digest acceptor_proof(std::span<const std::byte> secret, std::span<const std::byte> hello_frame,
                      const nonce& challenge, std::span<const std::byte> tls_binding,
                      std::span<const std::byte> welcome_frame) {
  const std::byte binding_size{static_cast<unsigned char>(tls_binding.size())};
  return hmac_sha256(secret, {bytes_of(acceptor_label), hello_frame, challenge,
                              std::span(&binding_size, 1), tls_binding, welcome_frame});
}

}  // namespace galaxies::security
