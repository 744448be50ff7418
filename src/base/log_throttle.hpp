// At most one log line per interval for an event a stranger can repeat at will (refused
// connections, accept errors): the first is logged at once, the rest are counted and the count is
// shown with the next line let through. Logs must not become the attacker's amplifier.
// Threading: not synchronised; one owner.
#pragma once

#include <chrono>
#include <cstdint>

namespace galaxies::base {

class log_throttle {
 public:
  using clock = std::chrono::steady_clock;

  explicit log_throttle(clock::duration interval) noexcept : interval_(interval) {}

  // True when a line may be written now; `suppressed` then holds how many events were not
  // logged since the last line.
  bool allow(clock::time_point now, std::uint64_t& suppressed) noexcept {
    if (logged_once_ && now - last_ < interval_) {
      ++suppressed_;
      return false;
    }
    logged_once_ = true;
    last_ = now;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  clock::duration interval_;
  clock::time_point last_{};
  bool logged_once_ = false;
  std::uint64_t suppressed_ = 0;
};

}  // namespace galaxies::base
