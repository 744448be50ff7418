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

namespace {

bool worth_a_warning(close_reason reason) {
  switch (reason) {
    case close_reason::protocol_error:
    case close_reason::io_error:
    case close_reason::heartbeat_timeout:
    case close_reason::handshake_timeout:
    case close_reason::overloaded:
    case close_reason::write_stall:
    case close_reason::internal_error:
    case close_reason::tls_failed:
    case close_reason::unauthorized:
    case close_reason::limit:
      return true;
    default:
      return false;
  }
}

// Whether a warning may be written now, and what to add about the ones held back before it.
bool let_through(base::log_throttle* throttle, std::string& note) {
  if (!throttle) return true;
  std::uint64_t suppressed = 0;
  if (!throttle->allow(base::log_throttle::clock::now(), suppressed)) return false;
  if (suppressed)
    note = " (" + std::to_string(suppressed) + " such lines about strangers not shown)";
  return true;
}

std::string describe(const link_state_at_close* state) {
  if (state == nullptr) return {};
  const auto ms = [](std::chrono::nanoseconds d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  std::string text = fmt::format(" (last read {} ms ago", ms(state->since_read));
  if (state->silence_limit > std::chrono::nanoseconds::zero())
    text += fmt::format(", against a limit of {} ms", ms(state->silence_limit));
  text += fmt::format("; last write {} ms ago, {} bytes queued", ms(state->since_write),
                      state->queued_bytes);
  if (state->write_stalled > std::chrono::nanoseconds::zero())
    text += fmt::format(", a write waiting for {} ms", ms(state->write_stalled));
  if (state->path)
    text += fmt::format(
        "; tcp: the peer's last segment {} ms ago, {} retransmitted, {} received "
        "out of order",
        state->path->since_peer_segment.count(), state->path->retransmitted,
        state->path->out_of_order);
  return text + ")";
}

}  // namespace

void log_close(std::string_view name, close_reason reason, std::error_code error,
               base::log_throttle* throttle, const link_state_at_close* state) {
  auto level = worth_a_warning(reason) ? spdlog::level::warn : spdlog::level::debug;
  std::string note;
  if (level == spdlog::level::warn && !let_through(throttle, note)) level = spdlog::level::debug;
  if (!spdlog::should_log(level)) return;
  const std::string detail = describe(state);
  if (error)
    spdlog::log(level, "connection {} closed: {} ({}){}{}", name, to_string(reason),
                error.message(), detail, note);
  else
    spdlog::log(level, "connection {} closed: {}{}{}", name, to_string(reason), detail, note);
}

void log_internal_error(std::string_view name, std::string_view what) {
  spdlog::error("connection {}: internal error: {}", name,
                escaped_sample(std::as_bytes(std::span(what.data(), what.size())), 200));
}

void log_stretched_silence(std::string_view name, std::chrono::nanoseconds silent,
                           std::chrono::nanoseconds limit, std::chrono::nanoseconds stretched,
                           stretch_reason why_stretched, std::chrono::nanoseconds ours,
                           std::chrono::nanoseconds peers, std::uint64_t suppressed) {
  using ms = std::chrono::milliseconds;
  const auto count = [](std::chrono::nanoseconds d) {
    return std::chrono::duration_cast<ms>(d).count();
  };
  std::string why;
  switch (why_stretched) {
    case stretch_reason::peer_cpu_wait:
      why = "the peer, on this machine, is waiting for a core";
      break;
    case stretch_reason::path_loss:
      why = "the path lost packets lately and the peer's kernel still answers";
      break;
    case stretch_reason::lateness:
      why = ours >= peers ? fmt::format("this process runs late (its timers fire up to {} ms late)",
                                        count(ours))
                          : fmt::format("the peer says it runs late (up to {} ms)", count(peers));
      break;
  }
  spdlog::warn(
      "connection {}: silent for {} ms, past its {} ms limit, but {}: waiting up to {} ms before "
      "declaring it gone{}",
      name, count(silent), count(limit), why, count(stretched),
      suppressed ? fmt::format(" ({} more such lines not shown)", suppressed) : std::string());
}

void log_protocol_violation(std::string_view name, std::error_code error,
                            std::span<const std::byte> sample, base::log_throttle* throttle) {
  std::string note;
  if (!let_through(throttle, note)) return;
  spdlog::warn("connection {}: bad input: {}; first bytes: \"{}\"{}", name, error.message(),
               escaped_sample(sample), note);
}

}  // namespace galaxies::transport
