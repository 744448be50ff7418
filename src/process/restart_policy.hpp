// When to respawn a worker slot: pure logic over timestamps, unit-tested without processes.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>

#include "galaxies/options.hpp"

namespace galaxies::process {

struct restart_policy {
  bool respawn = true;  // false: every exit gives the slot up
  std::chrono::milliseconds initial_delay{100};
  std::chrono::milliseconds max_delay{5000};
  // A worker that ran this long before exiting resets the backoff.
  std::chrono::milliseconds stable_after{5000};
  // This many exits inside `crash_window` means the slot is crash-looping: give up.
  std::size_t crash_loop_exits = 5;
  std::chrono::milliseconds crash_window{10000};
};

// The policy galaxies::restart_options asks for; std::invalid_argument, naming the field, for one
// that makes no sense (a backoff that never grows or shrinks past its cap, a window of nothing).
restart_policy make_restart_policy(const restart_options& options);

class restart_tracker {
 public:
  using clock = std::chrono::steady_clock;
  struct decision {
    bool give_up = false;
    std::chrono::milliseconds delay{0};  // when !give_up: wait this long, then respawn
  };

  explicit restart_tracker(restart_policy policy = {}) : policy_(policy) {}

  // The slot's worker started at `started` and exited at `now`.
  decision on_exit(clock::time_point started, clock::time_point now);

 private:
  restart_policy policy_;
  std::chrono::milliseconds next_delay_{0};
  std::deque<clock::time_point> recent_exits_;
};

}  // namespace galaxies::process
