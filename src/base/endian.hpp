// Little-endian load/store helpers for the wire format (docs/protocol.md §1).
// memcpy keeps them free of alignment and aliasing traps; compilers turn each into one move.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace galaxies::base {

static_assert(std::endian::native == std::endian::little,
              "the wire is little-endian; a big-endian port must byte-swap here");

template <class T>
requires std::is_integral_v<T>
inline T load_le(const std::byte* p) noexcept {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

template <class T>
requires std::is_integral_v<T>
inline void store_le(std::byte* p, T value) noexcept {
  std::memcpy(p, &value, sizeof value);
}

}  // namespace galaxies::base
