// Typed errors that requests complete with. Safe to use from any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <system_error>

namespace galaxies {

// Numbering is the wire's (docs/protocol.md §7): never renumber.
enum class errc : std::uint32_t {
  ok = 0,
  timeout = 1,
  node_left = 2,
  no_such_node = 3,
  no_handler = 4,
  too_large = 5,
  overloaded = 6,
  unauthorized = 7,
  handler_failed = 8,
  shutting_down = 9,
  not_connected = 10,
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// Why a node or host left (docs/protocol.md §7).
enum class leave_reason : std::uint8_t {
  exited = 1,
  disconnected = 2,
  host_left = 3,
  graceful = 4,
  link_lost = 5,
  registry_expired = 6,
  protocol_error = 7,
  overloaded = 8,  // its connection could not keep up with its traffic and was closed
};

std::string_view to_string(leave_reason reason) noexcept;

}  // namespace galaxies

template <>
struct std::is_error_code_enum<galaxies::errc> : std::true_type {};
