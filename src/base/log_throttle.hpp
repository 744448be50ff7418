// A bound on log lines about an event a stranger can repeat at will (refused connections, failed
// handshakes, accept errors): a burst is logged in full, then at most one line per interval; the
// lines held back are counted, and the count shown with the next line let through. Logs must not
// become the attacker's amplifier.
// Threading: not synchronised; one owner.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace galaxies::base {

class log_throttle {
 public:
  using clock = std::chrono::steady_clock;

  // `burst` lines at once, then one more per `interval` (a token bucket).
  explicit log_throttle(clock::duration interval, std::uint32_t burst = 1) noexcept
      : interval_(interval), burst_(burst), tokens_(burst) {}

  // True when a line may be written now; `suppressed` then holds how many events were not
  // logged since the last line.
  bool allow(clock::time_point now, std::uint64_t& suppressed) noexcept {
    if (started_) {
      const auto earned = (now - refilled_) / interval_;
      if (earned > 0) {
        tokens_ = static_cast<std::uint32_t>(
            std::min<std::int64_t>(burst_, tokens_ + static_cast<std::int64_t>(earned)));
        refilled_ += earned * interval_;
      }
    } else {
      started_ = true;
      refilled_ = now;
    }
    if (tokens_ == 0) {
      ++suppressed_;
      return false;
    }
    --tokens_;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  clock::duration interval_;
  std::uint32_t burst_;
  std::uint32_t tokens_;
  clock::time_point refilled_{};
  bool started_ = false;
  std::uint64_t suppressed_ = 0;
};

}  // namespace galaxies::base
