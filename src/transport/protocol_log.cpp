#include "transport/protocol_log.hpp"

#include <spdlog/spdlog.h>

namespace galaxies::transport {

std::string escaped_sample(std::span<const std::byte> bytes, std::size_t max_bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  const std::size_t n = std::min(bytes.size(), max_bytes);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 0xf]);
    }
  }
  if (bytes.size() > n) out += "...";
  return out;
}

void log_close(std::string_view name, close_reason reason, std::error_code error) {
  const auto level = reason == close_reason::protocol_error || reason == close_reason::io_error ||
                             reason == close_reason::heartbeat_timeout
                         ? spdlog::level::warn
                         : spdlog::level::debug;
  if (error)
    spdlog::log(level, "connection {} closed: {} ({})", name, to_string(reason), error.message());
  else
    spdlog::log(level, "connection {} closed: {}", name, to_string(reason));
}

void log_protocol_violation(std::string_view name, std::error_code error,
                            std::span<const std::byte> sample) {
  spdlog::warn("connection {}: bad input: {}; first bytes: \"{}\"", name, error.message(),
               escaped_sample(sample));
}

}  // namespace galaxies::transport
