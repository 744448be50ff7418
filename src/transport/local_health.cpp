#include "transport/local_health.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace galaxies::transport {
namespace {

// base x multiplier (at least 1), saturated: a max_stretch read from a configuration is not
// trusted to keep the product in range.
std::chrono::steady_clock::duration bound(std::chrono::steady_clock::duration base,
                                          int multiplier) noexcept {
  using rep = std::chrono::steady_clock::rep;
  const rep m = std::max(multiplier, 1);
  if (base.count() > std::numeric_limits<rep>::max() / m)
    return std::chrono::steady_clock::duration::max();
  return base * m;
}

}  // namespace

std::chrono::steady_clock::duration forgive_cpu_wait(std::chrono::steady_clock::duration limit,
                                                     std::chrono::steady_clock::duration base,
                                                     std::chrono::steady_clock::duration waited,
                                                     int max_multiplier) noexcept {
  const auto most = bound(base, max_multiplier);
  if (waited <= waited.zero() || limit >= most) return limit;
  return limit + std::min(waited, most - limit);
}

void decaying_peak::note(clock::duration sample, clock::time_point now,
                         clock::duration half_life) noexcept {
  if (sample > clock::duration::zero() && sample >= value(now, half_life)) {
    peak_ = sample;
    peak_at_ = now;
  }
}

decaying_peak::clock::duration decaying_peak::value(clock::time_point now,
                                                    clock::duration half_life) const noexcept {
  if (peak_ <= clock::duration::zero()) return clock::duration::zero();
  const auto since = std::max(now - peak_at_, clock::duration::zero());
  if (half_life <= clock::duration::zero()) return peak_;
  const double halvings =
      std::chrono::duration<double>(since) / std::chrono::duration<double>(half_life);
  // Past ~40 halvings any peak is below a nanosecond; exp2 of a large negative is 0 anyway.
  return std::chrono::duration_cast<clock::duration>(std::chrono::duration<double, clock::period>(
      static_cast<double>(peak_.count()) * std::exp2(-halvings)));
}

void local_health::timer_fired(clock::time_point due, clock::time_point now) noexcept {
  const auto late = std::max(now - due, clock::duration::zero());
  counters_.worst = std::max(counters_.worst, late);
  if (late <= settings_.tolerance) return;
  ++counters_.late_ticks;
  excess_.note(late - settings_.tolerance, now, settings_.half_life);
}

local_health::clock::duration local_health::excess_lateness(clock::time_point now) const noexcept {
  return excess_.value(now, settings_.half_life);
}

local_health::clock::duration local_health::silence_limit(
    clock::duration base, clock::time_point now, clock::duration peer_excess) const noexcept {
  const auto most = bound(base, settings_.max_multiplier);
  const auto excess = std::max(excess_lateness(now), peer_excess);
  const auto stretched = base + excess * std::max(settings_.stretch_factor, 0);
  return std::min(stretched, most);
}

local_health::clock::duration local_health::heartbeat_spacing(
    clock::duration base, clock::duration told, std::uint32_t peer_stretch) const noexcept {
  if (base <= clock::duration::zero() || told <= clock::duration::zero()) return base;
  const clock::rep most = std::min<clock::rep>(std::max(settings_.max_multiplier, 1),
                                               std::max<clock::rep>(peer_stretch / 2, 1));
  return base * std::min<clock::rep>(1 + told / (2 * base), most);
}

bool local_health::note_stretched(clock::time_point now, std::uint64_t& suppressed) noexcept {
  ++counters_.stretched;
  return log_.allow(now, suppressed);
}

}  // namespace galaxies::transport
