// The proofs of the host-link handshake when a cluster secret is set (docs/protocol.md §3.2).
// Each side proves it holds the secret with an HMAC over everything that identifies this one
// handshake: the dialler's whole hello (both host UUIDs, its nonce, every negotiated record), the
// acceptor's fresh challenge, the TLS session when there is one, and for the acceptor its whole
// welcome as well. Distinct labels per direction stop reflection; fresh nonces stop replay; the
// TLS binding stops relaying one session's handshake into another.
// Threading: free functions without shared state; safe from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <span>

#include "security/hmac.hpp"

namespace galaxies::security {

inline constexpr std::size_t nonce_size = 32;
using nonce = std::array<std::byte, nonce_size>;

nonce make_nonce();

// What the dialler sends in `auth_proof`.
digest dialler_proof(std::span<const std::byte> secret, std::span<const std::byte> hello_frame,
                     const nonce& challenge, std::span<const std::byte> tls_binding);

// What the acceptor puts in its welcome's `auth_proof` record. `welcome_frame` is the whole
// welcome as sent, with the 32 bytes of that record's value set to zero.
digest acceptor_proof(std::span<const std::byte> secret, std::span<const std::byte> hello_frame,
                      const nonce& challenge, std::span<const std::byte> tls_binding,
                      std::span<const std::byte> welcome_frame);

}  // namespace galaxies::security
