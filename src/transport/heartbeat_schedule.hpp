// When a link sends its next heartbeat: an interval after its last write, rounded up to the grid
// of whole intervals of the steady clock, and never more than a quarter interval early, so that a
// link keeping to the grid sends exactly once per interval. The processes of one machine share
// that clock (CLOCK_MONOTONIC), so their idle links all send at the same instants and each
// process reads many peers' heartbeats in one wake-up instead of one wake-up per heartbeat, as
// the kernel's round_jiffies() gathers its own timers. On a machine running hundreds of
// processes the wake-ups, not the bytes, are what heartbeats cost (bench/RESULTS.md); peers on
// other machines lose nothing, their heartbeats come as often as before.
// Pure: fed timestamps, never reads a clock.
#pragma once

#include <chrono>

namespace galaxies::transport {

inline std::chrono::steady_clock::time_point next_heartbeat(
    std::chrono::steady_clock::time_point last_write,
    std::chrono::steady_clock::duration interval) noexcept {
  using time_point = std::chrono::steady_clock::time_point;
  if (interval <= interval.zero()) return time_point::max();
  const auto earliest = (last_write + interval - interval / 4).time_since_epoch();
  const auto past = earliest % interval;
  return time_point(past == past.zero() ? earliest : earliest - past + interval);
}

}  // namespace galaxies::transport
