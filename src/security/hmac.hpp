// HMAC-SHA256 and random bytes, over OpenSSL 3 (EVP_MAC, RAND_bytes).
// Threading: free functions without shared state; safe from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <span>

namespace galaxies::security {

using digest = std::array<std::byte, 32>;

// HMAC-SHA256 keyed with `key` over the concatenation of `parts`. Throws std::runtime_error only
// if OpenSSL itself fails (no HMAC or SHA-256 available), which start-up would have shown.
digest hmac_sha256(std::span<const std::byte> key,
                   std::initializer_list<std::span<const std::byte>> parts);

// Compares in time independent of where they differ: a timing side channel must not let a
// stranger find a valid proof byte by byte.
bool same_digest(const digest& expected, std::span<const std::byte> found) noexcept;

// Cryptographically strong random bytes; throws std::runtime_error if none can be had.
void random_bytes(std::span<std::byte> out);

}  // namespace galaxies::security
