#include "transport/local_health.hpp"

#include <algorithm>
#include <cmath>

namespace galaxies::transport {

void local_health::timer_fired(clock::time_point due, clock::time_point now) noexcept {
  const auto late = std::max(now - due, clock::duration::zero());
  counters_.worst = std::max(counters_.worst, late);
  if (late <= settings_.tolerance) return;
  ++counters_.late_ticks;
  const auto excess = late - settings_.tolerance;
  if (excess >= excess_lateness(now)) {
    peak_ = excess;
    peak_at_ = now;
  }
}

local_health::clock::duration local_health::excess_lateness(clock::time_point now) const noexcept {
  if (peak_ <= clock::duration::zero()) return clock::duration::zero();
  const auto since = std::max(now - peak_at_, clock::duration::zero());
  if (settings_.half_life <= clock::duration::zero()) return peak_;
  const double halvings =
      std::chrono::duration<double>(since) / std::chrono::duration<double>(settings_.half_life);
  // Past ~40 halvings any peak is below a nanosecond; exp2 of a large negative is 0 anyway.
  return std::chrono::duration_cast<clock::duration>(std::chrono::duration<double, clock::period>(
      static_cast<double>(peak_.count()) * std::exp2(-halvings)));
}

local_health::clock::duration local_health::silence_limit(clock::duration base,
                                                          clock::time_point now) const noexcept {
  const auto most = base * std::max(settings_.max_multiplier, 1);
  const auto stretched = base + excess_lateness(now) * std::max(settings_.stretch_factor, 0);
  return std::min(stretched, most);
}

bool local_health::note_stretched(clock::time_point now, std::uint64_t& suppressed) noexcept {
  ++counters_.stretched;
  return log_.allow(now, suppressed);
}

}  // namespace galaxies::transport
