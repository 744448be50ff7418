// Who a galaxies process logs through (README, "Logging"): the application's own spdlog default
// logger when it installed one, else options::log_sink, else stderr as text or JSON.
// Threading: call once per process, before its loop runs and before anything logs from a thread.
#pragma once

#include <cstdint>
#include <memory>

#include "galaxies/options.hpp"

namespace galaxies::host {

class async_fd_sink;

// While it lives, galaxies' stderr logger writes from a thread of its own (async_fd_sink.hpp).
// Its end writes what is queued and ends that thread; later records are written as they come.
class logging_session {
 public:
  logging_session() = default;
  explicit logging_session(std::shared_ptr<async_fd_sink> sink) noexcept;
  ~logging_session();
  logging_session(logging_session&&) noexcept = default;
  logging_session& operator=(logging_session&&) = delete;

 private:
  std::shared_ptr<async_fd_sink> sink_;
};

// Throws std::invalid_argument for a log_format or log_level galaxies does not know. Call it
// after the fork server is forked (fork_server.hpp): it may start the writer thread.
[[nodiscard]] logging_session configure_logging(const options& opts, const char* role);

// Log lines this process's galaxies stderr logger dropped: its queue was full, or stderr refused.
std::uint64_t log_lines_dropped() noexcept;

// Whether log_format asks for JSON (and is valid: else std::invalid_argument).
bool logs_json(const options& opts);

}  // namespace galaxies::host
