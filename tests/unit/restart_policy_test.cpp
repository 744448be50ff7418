#include "process/restart_policy.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace galaxies::process {
namespace {

using namespace std::chrono_literals;
using clock = restart_tracker::clock;

restart_policy fast_policy() {
  return restart_policy{.initial_delay = 100ms,
                        .max_delay = 1000ms,
                        .stable_after = 5000ms,
                        .crash_loop_exits = 5,
                        .crash_window = 10000ms};
}

// Drives a tracker through synthetic time: each worker runs `run` and the restart takes the
// delay the tracker asked for.
class timeline {
 public:
  explicit timeline(restart_policy policy) : tracker_(policy) {}
  restart_tracker::decision exit_after(clock::duration run) {
    const auto started = now_;
    now_ += run;
    auto d = tracker_.on_exit(started, now_);
    now_ += d.delay;
    return d;
  }
  void advance(clock::duration by) { now_ += by; }

 private:
  restart_tracker tracker_;
  clock::time_point now_{};
};

TEST(RestartTracker, FirstExitWaitsTheInitialDelay) {
  timeline t(fast_policy());
  const auto d = t.exit_after(1s);
  EXPECT_FALSE(d.give_up);
  EXPECT_EQ(d.delay, 100ms);
}

TEST(RestartTracker, QuickExitsDoubleTheDelayUpToTheCap) {
  auto policy = fast_policy();
  policy.crash_loop_exits = 100;
  timeline t(policy);
  for (auto expected : {100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms, 1000ms}) {
    const auto d = t.exit_after(10ms);
    ASSERT_FALSE(d.give_up);
    EXPECT_EQ(d.delay, expected);
  }
}

TEST(RestartTracker, AStableRunResetsTheBackoff) {
  auto policy = fast_policy();
  policy.crash_loop_exits = 100;
  timeline t(policy);
  t.exit_after(10ms);
  t.exit_after(10ms);
  EXPECT_EQ(t.exit_after(10ms).delay, 400ms);
  EXPECT_EQ(t.exit_after(5000ms).delay, 100ms) << "ran stable_after: back to the initial delay";
  EXPECT_EQ(t.exit_after(10ms).delay, 200ms) << "and doubling again from there";
  EXPECT_EQ(t.exit_after(4999ms).delay, 400ms) << "just short of stable_after is not stable";
}

TEST(RestartTracker, GivesUpOnTheNthExitInsideTheWindow) {
  timeline t(fast_policy());
  for (int i = 0; i < 4; ++i) ASSERT_FALSE(t.exit_after(10ms).give_up) << "exit " << i + 1;
  EXPECT_TRUE(t.exit_after(10ms).give_up);
}

TEST(RestartTracker, ExitsOlderThanTheWindowAreForgotten) {
  auto policy = fast_policy();
  policy.max_delay = 100ms;
  restart_tracker tracker(policy);
  const clock::time_point t0{};
  // Four exits, then a quiet spell longer than the window: the count starts again.
  for (int i = 0; i < 4; ++i) {
    const auto at = t0 + i * 1s;
    ASSERT_FALSE(tracker.on_exit(at - 10ms, at).give_up);
  }
  for (int i = 0; i < 4; ++i) {
    const auto at = t0 + 20s + i * 1s;
    ASSERT_FALSE(tracker.on_exit(at - 10ms, at).give_up) << "exit " << i + 1 << " after the gap";
  }
  const auto at = t0 + 24s;
  EXPECT_TRUE(tracker.on_exit(at - 10ms, at).give_up);
}

TEST(RestartTracker, ExitsSpreadWiderThanTheWindowNeverGiveUp) {
  auto policy = fast_policy();
  policy.crash_window = 1000ms;
  restart_tracker tracker(policy);
  clock::time_point at{};
  for (int i = 0; i < 50; ++i) {
    at += 300ms;  // four exits per window at most
    ASSERT_FALSE(tracker.on_exit(at - 10ms, at).give_up) << "exit " << i + 1;
  }
}

TEST(RestartTracker, EvenStableExitsCountTowardsTheCrashLoop) {
  auto policy = fast_policy();
  policy.stable_after = 10ms;
  timeline t(policy);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(t.exit_after(20ms).delay, 100ms);
  EXPECT_TRUE(t.exit_after(20ms).give_up);
}

TEST(RestartTracker, ZeroCrashLoopExitsNeverGivesUp) {
  auto policy = fast_policy();
  policy.crash_loop_exits = 0;
  timeline t(policy);
  for (int i = 0; i < 100; ++i) ASSERT_FALSE(t.exit_after(1ms).give_up);
}

TEST(RestartTracker, InitialDelayAboveTheCapIsCapped) {
  auto policy = fast_policy();
  policy.initial_delay = 2000ms;
  timeline t(policy);
  EXPECT_EQ(t.exit_after(1s).delay, 1000ms);
  EXPECT_EQ(t.exit_after(1s).delay, 1000ms);
}

// ---- galaxies::restart_options, as run() takes them ------------------------------------------

TEST(RestartOptions, MapOntoThePolicyTheSupervisorFollows) {
  restart_options o;
  o.initial_backoff = 30ms;
  o.max_backoff = 400ms;
  o.stable_after = 2s;
  o.max_restarts = 2;
  o.crash_window = 7s;
  const restart_policy p = make_restart_policy(o);
  EXPECT_TRUE(p.respawn);
  EXPECT_EQ(p.initial_delay, 30ms);
  EXPECT_EQ(p.max_delay, 400ms);
  EXPECT_EQ(p.stable_after, 2s);
  EXPECT_EQ(p.crash_window, 7s);

  // Two restarts allowed in the window: the third exit gives the slot up.
  timeline t(p);
  EXPECT_FALSE(t.exit_after(10ms).give_up);
  EXPECT_FALSE(t.exit_after(10ms).give_up);
  EXPECT_TRUE(t.exit_after(10ms).give_up);
}

TEST(RestartOptions, TheDefaultsAreTheSupervisorsOwn) {
  const restart_policy p = make_restart_policy(restart_options{});
  const restart_policy d{};
  EXPECT_EQ(p.respawn, d.respawn);
  EXPECT_EQ(p.initial_delay, d.initial_delay);
  EXPECT_EQ(p.max_delay, d.max_delay);
  EXPECT_EQ(p.stable_after, d.stable_after);
  EXPECT_EQ(p.crash_loop_exits, d.crash_loop_exits);
  EXPECT_EQ(p.crash_window, d.crash_window);
}

TEST(RestartOptions, UnlimitedRestartsNeverGiveUp) {
  restart_options o;
  o.max_restarts = restart_options::unlimited;
  o.crash_window = 0ms;  // meaningless then, so not refused
  timeline t(make_restart_policy(o));
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(t.exit_after(1ms).give_up) << i;
}

TEST(RestartOptions, ZeroRestartsGivesUpOnTheFirstExit) {
  restart_options o;
  o.max_restarts = 0;
  timeline t(make_restart_policy(o));
  EXPECT_TRUE(t.exit_after(1h).give_up);
}

TEST(RestartOptions, RespawnOffGivesUpOnEveryExitHoweverHealthy) {
  restart_options o;
  o.respawn = false;
  o.max_restarts = restart_options::unlimited;
  timeline t(make_restart_policy(o));
  EXPECT_TRUE(t.exit_after(1h).give_up);
}

TEST(RestartOptions, NonsenseIsRefusedNamingTheField) {
  const auto refused = [](auto change, const std::string& field) {
    restart_options o;
    change(o);
    try {
      make_restart_policy(o);
      ADD_FAILURE() << field << ": accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  refused([](restart_options& o) { o.initial_backoff = 0ms; }, "initial_backoff");
  refused([](restart_options& o) { o.initial_backoff = -5ms; }, "initial_backoff");
  refused([](restart_options& o) { o.max_backoff = o.initial_backoff - 1ms; }, "max_backoff");
  refused([](restart_options& o) { o.stable_after = -1ms; }, "stable_after");
  refused([](restart_options& o) { o.crash_window = 0ms; }, "crash_window");
}

}  // namespace
}  // namespace galaxies::process
