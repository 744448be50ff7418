#include "process/restart_policy.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace galaxies::process {

namespace {

std::string ms(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

}  // namespace

restart_policy make_restart_policy(const restart_options& o) {
  const auto refuse = [](const std::string& why) {
    throw std::invalid_argument("options::restart: " + why);
  };
  // Zero would never grow (a doubled 0 is 0): a crashing worker would be restarted at once, for
  // ever when max_restarts is unlimited.
  if (o.initial_backoff.count() <= 0)
    refuse("initial_backoff is " + ms(o.initial_backoff) + "; it must be positive");
  if (o.max_backoff < o.initial_backoff)
    refuse("max_backoff (" + ms(o.max_backoff) + ") is below initial_backoff (" +
           ms(o.initial_backoff) + ")");
  if (o.stable_after.count() < 0)
    refuse("stable_after is " + ms(o.stable_after) + "; it must not be negative");
  if (o.max_restarts != restart_options::unlimited && o.crash_window.count() <= 0)
    refuse("crash_window is " + ms(o.crash_window) +
           "; it must be positive (or max_restarts unlimited)");
  return restart_policy{
      .respawn = o.respawn,
      .initial_delay = o.initial_backoff,
      .max_delay = o.max_backoff,
      .stable_after = o.stable_after,
      // restart_policy counts exits, and reads 0 as "never give up".
      .crash_loop_exits = o.max_restarts == restart_options::unlimited ? 0 : o.max_restarts + 1,
      .crash_window = o.crash_window,
  };
}

restart_tracker::decision restart_tracker::on_exit(clock::time_point started,
                                                   clock::time_point now) {
  if (!policy_.respawn) return decision{.give_up = true};
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
