// Timers on a grid shared by every process of a machine: a deadline rounded up to a whole
// multiple of a step of the monotonic clock (CLOCK_MONOTONIC, which all processes of one machine
// read alike). Periodic work that many processes do (heartbeats, registry refreshes, reading
// what others wrote) then happens at the same instants everywhere, so each process finds many
// peers' messages waiting per wake-up instead of waking once for each, as the kernel's
// round_jiffies() gathers its own timers. On a machine running hundreds of galaxies processes the
// wake-ups, not the bytes, are what idle traffic costs (bench/RESULTS.md). Processes on other
// machines have unrelated clocks and are neither helped nor hurt.
// Pure: fed timestamps, never reads a clock.
#pragma once

#include <chrono>

namespace galaxies::base {

// The first grid point at or after `earliest`; `earliest` itself when step is not positive.
inline std::chrono::steady_clock::time_point on_grid(
    std::chrono::steady_clock::time_point earliest,
    std::chrono::steady_clock::duration step) noexcept {
  using time_point = std::chrono::steady_clock::time_point;
  if (step <= step.zero()) return earliest;
  const auto since = earliest.time_since_epoch();
  const auto past = since % step;
  if (past == past.zero()) return earliest;
  // A negative offset (a clock epoch after the instant) rounds toward zero: still at or after.
  return time_point(past > past.zero() ? since - past + step : since - past);
}

// When periodic work that last ran at `last` runs next: the last grid point of whole periods at
// or before `last + period`. Never later than a period after the last run (what a peer's
// heartbeat detection and a row's expiry count on); work that keeps to the grid runs exactly
// once per period however late each run started (within a period); a first run off the grid
// comes early once, and from then on keeps to it.
inline std::chrono::steady_clock::time_point next_period(
    std::chrono::steady_clock::time_point last,
    std::chrono::steady_clock::duration period) noexcept {
  if (period <= period.zero()) return std::chrono::steady_clock::time_point::max();
  const auto due = last + period;
  const auto point = on_grid(due, period);
  return point == due ? due : point - period;
}

}  // namespace galaxies::base
