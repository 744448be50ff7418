#include "process/restart_policy.hpp"

#include <algorithm>

namespace galaxies::process {

restart_tracker::decision restart_tracker::on_exit(clock::time_point started,
                                                   clock::time_point now) {
  // crash_loop_exits == 0 would mean "give up before the first restart"; read it as "never".
  if (policy_.crash_loop_exits > 0) {
    while (!recent_exits_.empty() && now - recent_exits_.front() > policy_.crash_window) {
      recent_exits_.pop_front();
    }
    recent_exits_.push_back(now);
    if (recent_exits_.size() >= policy_.crash_loop_exits) return decision{.give_up = true};
  }

  // A worker that stayed up long enough was healthy: its exit starts the backoff afresh.
  if (now - started >= policy_.stable_after) next_delay_ = std::chrono::milliseconds{0};
  const auto delay =
      std::min(next_delay_.count() == 0 ? policy_.initial_delay : next_delay_, policy_.max_delay);
  next_delay_ = std::min(delay * 2, policy_.max_delay);
  return decision{.give_up = false, .delay = delay};
}

}  // namespace galaxies::process
