// How long a process's loop keeps polling for more work before it goes to sleep. Waking a
// sleeping process costs a wake-up of its CPU: tens of microseconds on a VM whose idle vCPUs halt
// (bench/RESULTS.md measures 20 µs per hop here), more than a whole forwarding step. A process in
// the middle of a conversation, whose next message is due within that time, gains by polling for
// it instead, as Erlang's schedulers busy-wait before they sleep (`+sbwt`).
//
// The window adapts as the kernel's haltpoll governor does for an idle vCPU
// (drivers/cpuidle/governors/haltpoll.c): an idle period that outlasted the window but ended
// within the ceiling grows it (the next one would have been caught); one beyond the ceiling halves
// it, and below a quarter of the ceiling it closes. So a process at rest, whose next event is a
// heartbeat tick hundreds of milliseconds away, polls for nothing, and one under traffic polls at
// most the ceiling after each burst.
// Pure: fed durations, never reads a clock.
#pragma once

#include <algorithm>
#include <chrono>

namespace galaxies::base {

class spin_governor {
 public:
  using duration = std::chrono::nanoseconds;

  explicit spin_governor(duration ceiling) noexcept : ceiling_(std::max(ceiling, duration{})) {}

  // How long to poll before sleeping, from now on.
  duration window() const noexcept { return window_; }

  // An idle period ended after `idle`: from the moment nothing was ready to the next work.
  void idle_ended(duration idle) noexcept {
    if (idle <= window_) return;
    if (idle <= ceiling_)
      window_ = std::min(std::max(window_ * 2, grow_start()), ceiling_);
    else
      window_ = window_ / 2 < grow_start() ? duration{} : window_ / 2;
  }

 private:
  duration grow_start() const noexcept { return ceiling_ / 4; }

  duration ceiling_;
  duration window_{};
};

}  // namespace galaxies::base
