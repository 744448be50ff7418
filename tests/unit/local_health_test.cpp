// The local health judge, fed timestamps: how late ticks stretch a silence limit, how the
// stretch fades, and that it is bounded.
#include "transport/local_health.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;
using clock = local_health::clock;

const clock::time_point t0 = clock::time_point{} + 1000s;
constexpr auto base = 1500ms;

local_health_settings settings() {
  local_health_settings s;
  s.tolerance = 50ms;
  s.stretch_factor = 3;
  s.max_multiplier = 8;
  s.half_life = 2s;
  return s;
}

TEST(local_health, punctual_ticks_leave_the_limit_alone) {
  local_health h(settings());
  for (int i = 0; i < 100; ++i) {
    const auto due = t0 + i * 62ms;
    h.timer_fired(due, due + 3ms);
  }
  EXPECT_EQ(h.silence_limit(base, t0 + 7s), base);
  EXPECT_EQ(h.counters().late_ticks, 0u);
  EXPECT_EQ(h.counters().worst, 3ms);
}

TEST(local_health, jitter_within_the_tolerance_counts_as_none) {
  local_health h(settings());
  h.timer_fired(t0, t0 + 50ms);
  EXPECT_EQ(h.silence_limit(base, t0 + 50ms), base);
}

TEST(local_health, a_late_tick_stretches_the_limit_by_the_factor_times_its_excess) {
  local_health h(settings());
  h.timer_fired(t0, t0 + 350ms);  // 300 ms beyond the tolerance
  EXPECT_EQ(h.excess_lateness(t0 + 350ms), 300ms);
  EXPECT_EQ(h.silence_limit(base, t0 + 350ms), base + 900ms);
  EXPECT_EQ(h.counters().late_ticks, 1u);
  EXPECT_EQ(h.counters().worst, 350ms);
}

TEST(local_health, the_stretch_halves_every_half_life_once_the_loop_is_punctual_again) {
  local_health h(settings());
  h.timer_fired(t0, t0 + 450ms);  // excess 400 ms
  h.timer_fired(t0 + 500ms, t0 + 501ms);
  const auto later = t0 + 450ms + 2s;
  const double excess_ms =
      std::chrono::duration<double, std::milli>(h.excess_lateness(later)).count();
  EXPECT_NEAR(excess_ms, 200.0, 0.01);
  EXPECT_LT(h.excess_lateness(t0 + 60s), 1ms);
  EXPECT_LT(h.silence_limit(base, t0 + 60s), base + 1ms);
}

TEST(local_health, a_smaller_late_tick_does_not_replace_a_larger_recent_one) {
  local_health h(settings());
  h.timer_fired(t0, t0 + 1050ms);                   // excess 1 s
  h.timer_fired(t0 + 1100ms, t0 + 1100ms + 250ms);  // excess 200 ms, while the 1 s is fresh
  EXPECT_GT(h.excess_lateness(t0 + 1350ms), 800ms);
  // A larger one does.
  h.timer_fired(t0 + 1400ms, t0 + 1400ms + 2050ms);
  EXPECT_EQ(h.excess_lateness(t0 + 3450ms), 2s);
}

TEST(local_health, the_stretch_is_bounded_so_a_dead_peer_is_still_found) {
  local_health h(settings());
  h.timer_fired(t0, t0 + 60s);  // stopped for a minute
  EXPECT_EQ(h.silence_limit(base, t0 + 60s), 8 * base);
}

TEST(local_health, a_max_multiplier_of_one_turns_the_stretch_off) {
  local_health h(local_health_settings::bounded_by(1));
  h.timer_fired(t0, t0 + 5s);
  EXPECT_EQ(h.silence_limit(base, t0 + 5s), base);
  EXPECT_GT(h.excess_lateness(t0 + 5s), 4s) << "still measured, for status";
}

TEST(local_health, a_timer_that_fired_early_is_not_late) {
  local_health h(settings());
  h.timer_fired(t0, t0 - 5ms);
  EXPECT_EQ(h.counters().worst, 0ms);
  EXPECT_EQ(h.silence_limit(base, t0), base);
}

TEST(local_health, forgiven_silences_are_counted_and_their_log_lines_bounded) {
  local_health h(settings());
  std::uint64_t suppressed = 99;
  EXPECT_TRUE(h.note_stretched(t0, suppressed));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_FALSE(h.note_stretched(t0 + 1s, suppressed));
  EXPECT_FALSE(h.note_stretched(t0 + 2s, suppressed));
  EXPECT_TRUE(h.note_stretched(t0 + 11s, suppressed));
  EXPECT_EQ(suppressed, 2u);
  EXPECT_EQ(h.counters().stretched, 4u);
}

TEST(local_health, a_peer_that_says_it_runs_late_stretches_the_limit_like_our_own_lateness) {
  local_health h(settings());
  decaying_peak peer;
  h.note_peer(peer, 400ms, t0);
  EXPECT_EQ(h.peer_excess(peer, t0), 400ms);
  EXPECT_EQ(h.silence_limit(base, t0, h.peer_excess(peer, t0)), base + 1200ms);
  // Ours and theirs are not added: the larger one counts.
  h.timer_fired(t0, t0 + 150ms);  // 100 ms beyond the tolerance
  EXPECT_EQ(h.silence_limit(base, t0 + 150ms, 400ms), base + 1200ms);
  EXPECT_EQ(h.silence_limit(base, t0 + 150ms, 0ms), base + 300ms);
}

TEST(local_health, a_peers_report_fades_and_is_bounded_like_our_own) {
  local_health h(settings());
  decaying_peak peer;
  h.note_peer(peer, 1s, t0);
  h.note_peer(peer, 200ms, t0 + 1s);  // a smaller report does not hide the recent larger one
  EXPECT_GT(h.peer_excess(peer, t0 + 1s), 700ms);
  EXPECT_LT(h.peer_excess(peer, t0 + 60s), 1ms);
  decaying_peak liar;
  h.note_peer(liar, std::chrono::hours(1000), t0);
  EXPECT_EQ(h.silence_limit(base, t0, h.peer_excess(liar, t0)), 8 * base)
      << "a peer cannot make us wait past max_multiplier x the limit";
}

// Heartbeats thin out while we run late (protocol.md §8.1), in whole intervals, within the bounds.
TEST(local_health, heartbeats_go_further_apart_as_the_lateness_we_reported_grows) {
  const local_health h(settings());
  constexpr auto interval = 250ms;
  EXPECT_EQ(h.heartbeat_spacing(interval, 0ms, 8), interval) << "punctual";
  EXPECT_EQ(h.heartbeat_spacing(interval, 499ms, 8), interval) << "under two intervals late";
  EXPECT_EQ(h.heartbeat_spacing(interval, 500ms, 8), 2 * interval);
  EXPECT_EQ(h.heartbeat_spacing(interval, 1200ms, 8), 3 * interval);
  EXPECT_EQ(h.heartbeat_spacing(interval, 1h, 8), 4 * interval) << "half the peer's stretch";
  EXPECT_EQ(h.heartbeat_spacing(interval, 1h, 4), 2 * interval);
  EXPECT_EQ(h.heartbeat_spacing(interval, 1h, 1), interval) << "a peer that never stretches";
  EXPECT_EQ(h.heartbeat_spacing(interval, 1h, 0), interval);
  auto two = settings();
  two.max_multiplier = 2;
  EXPECT_EQ(local_health(two).heartbeat_spacing(interval, 1h, 64), 2 * interval)
      << "nor beyond our own stretch";
}

// The point of the bound: a peer that hears our lateness still waits for several of our spacings
// before it judges, whatever we told it (decayed over the spacing, as its copy is).
TEST(local_health, a_peer_hearing_our_lateness_waits_for_several_of_our_spacings) {
  const local_health h(settings());
  constexpr auto interval = 250ms;
  constexpr auto detection = 6 * interval;
  for (auto told = 0ms; told <= 20s; told += 10ms) {
    const auto spacing = h.heartbeat_spacing(interval, told, 8);
    decaying_peak heard;
    h.note_peer(heard, told, t0);
    const auto limit = h.silence_limit(detection, t0 + spacing, h.peer_excess(heard, t0 + spacing));
    EXPECT_GE(limit, 4 * spacing) << "told " << told.count() << " ms";
  }
}

// ---- what a peer of this machine waited for a core (process::cpu_wait) ----

TEST(local_health, a_peer_that_waited_for_a_core_is_given_that_much_longer) {
  const local_health h(settings());
  EXPECT_EQ(h.forgive_cpu_wait(base, base, 2s), base + 2s);
  EXPECT_EQ(h.forgive_cpu_wait(base + 1s, base, 2s), base + 3s) << "on top of a stretched limit";
}

TEST(local_health, a_peer_that_waited_for_no_core_is_given_nothing) {
  const local_health h(settings());
  EXPECT_EQ(h.forgive_cpu_wait(base, base, 0s), base);
  // A figure that went backwards (a pid reused by a newer process) forgives nothing either.
  EXPECT_EQ(h.forgive_cpu_wait(base, base, -3s), base);
}

// Further than a stretch for lateness (8 x base): masters queued 11 to 13 s for a core on a
// saturated machine were closed on at 8 x 1.5 s. Still bounded, and off with local health.
TEST(local_health, what_a_starved_peer_is_forgiven_is_bounded_five_times_further_than_a_stretch) {
  const local_health h(local_health_settings::bounded_by(8));
  EXPECT_EQ(h.forgive_cpu_wait(base, base, 20 * base), 21 * base);
  EXPECT_EQ(h.forgive_cpu_wait(base, base, 1h), 40 * base);
  EXPECT_EQ(h.forgive_cpu_wait(41 * base, base, 1s), 41 * base) << "never shortens a limit";
  EXPECT_EQ(local_health(local_health_settings::bounded_by(1)).forgive_cpu_wait(base, base, 1h),
            base)
      << "a max_stretch of 1 turns it off";
  EXPECT_EQ(forgive_cpu_wait(base, base, 1h, 8), 8 * base) << "the bound is the caller's";
  // A max_stretch from a configuration may be anything: the bounds saturate, never overflow.
  const local_health huge(local_health_settings::bounded_by(std::numeric_limits<int>::max()));
  EXPECT_EQ(huge.forgive_cpu_wait(base, base, 1h), base + 1h);
  EXPECT_EQ(forgive_cpu_wait(base, 24h, 1h, std::numeric_limits<int>::max()), base + 1h);
  EXPECT_EQ(huge.silence_limit(base, std::chrono::steady_clock::time_point{}), base);
}

}  // namespace
}  // namespace galaxies::transport
