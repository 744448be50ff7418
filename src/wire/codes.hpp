// Range checks for the enumerated codes carried on the wire, shared by the decoders: a value
// outside its table is malformed input, never cast into an enum that a switch elsewhere does not
// expect.
#pragma once

#include <cstdint>

#include "galaxies/error.hpp"
#include "wire/control.hpp"

namespace galaxies::wire::detail {

inline constexpr bool is_leave_reason(std::uint8_t value) noexcept {
  return value >= static_cast<std::uint8_t>(leave_reason::exited) &&
         value <= static_cast<std::uint8_t>(leave_reason::overloaded);
}

inline constexpr bool is_role(std::uint8_t value) noexcept {
  return value >= static_cast<std::uint8_t>(role::host) &&
         value <= static_cast<std::uint8_t>(role::observer);
}

inline constexpr bool is_refuse_code(std::uint16_t value) noexcept {
  return value >= static_cast<std::uint16_t>(refuse_code::wrong_target) &&
         value <= static_cast<std::uint16_t>(refuse_code::overloaded);
}

}  // namespace galaxies::wire::detail
