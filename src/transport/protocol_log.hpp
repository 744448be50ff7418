// Logging a connection's end and a peer's protocol violation: once, with a bounded sample.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "base/log_throttle.hpp"
#include "transport/close_reason.hpp"
#include "transport/path_loss.hpp"

namespace galaxies::transport {

// What a connection looked like when it closed: whoever reads why it ended also needs to know
// whether it was the peer that fell silent, or this side that had stopped writing to it.
struct link_state_at_close {
  std::chrono::nanoseconds since_read{};
  std::chrono::nanoseconds since_write{};
  std::size_t queued_bytes = 0;
  std::chrono::nanoseconds write_stalled{};  // zero: no write was waiting
  std::chrono::nanoseconds silence_limit{};  // a heartbeat_timeout's limit, as stretched; or zero
  // A host link's TCP counters at a heartbeat_timeout: was the path losing packets, and did the
  // peer's kernel still answer?
  std::optional<tcp_path_sample> path;
};

// A warning goes through `throttle` when one is given (null: always logged).
void log_close(std::string_view name, close_reason reason, std::error_code error,
               base::log_throttle* throttle = nullptr, const link_state_at_close* state = nullptr);

// Logs the reason and at most 32 bytes of what the peer sent, escaped (never raw bytes in logs).
void log_protocol_violation(std::string_view name, std::error_code error,
                            std::span<const std::byte> sample,
                            base::log_throttle* throttle = nullptr);

// An exception escaped this connection's code; `what` is escaped before it is printed.
void log_internal_error(std::string_view name, std::string_view what);

// Why a silence past its limit was given more time.
enum class stretch_reason {
  lateness,       // this process runs late, or the peer said it does (local_health.hpp)
  peer_cpu_wait,  // the kernel shows the peer, on this machine, waiting for a core
  path_loss,      // the path lost packets lately and the peer's kernel answers (path_loss.hpp)
};

// A peer silent past its limit was given more time (`why`; `ours` and `peers` are the lateness
// figures); `suppressed` such lines were held back since the last one.
void log_stretched_silence(std::string_view name, std::chrono::nanoseconds silent,
                           std::chrono::nanoseconds limit, std::chrono::nanoseconds stretched,
                           stretch_reason why, std::chrono::nanoseconds ours,
                           std::chrono::nanoseconds peers, std::uint64_t suppressed);

std::string escaped_sample(std::span<const std::byte> bytes, std::size_t max_bytes = 32);

}  // namespace galaxies::transport
