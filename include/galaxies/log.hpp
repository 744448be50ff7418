// What galaxies logs, handed to an application that does not use spdlog (options::log_sink).
// Plain data; no spdlog in sight (it is a private dependency of the library).
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace galaxies {

enum class log_severity : std::uint8_t { trace, debug, info, warn, error, critical };

// "trace", "debug", "info", "warn", "error", "critical": the names options::log_level takes.
std::string_view to_string(log_severity severity) noexcept;

// One record. The views are valid during the sink's call only: copy what you keep.
struct log_record {
  std::chrono::system_clock::time_point time;
  log_severity level = log_severity::info;
  std::string_view role;  // "master" or "worker"
  int pid = 0;            // the process that logged it
  // One line, no newline. Text from peers and registry rows in it is made printable where it
  // is quoted, but it is not escaped for any format: escape it for yours (JSON, HTML, ...).
  std::string_view text;
};

}  // namespace galaxies
