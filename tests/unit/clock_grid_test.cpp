#include "base/clock_grid.hpp"

#include <gtest/gtest.h>

#include <random>

namespace galaxies::base {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;
constexpr clock::duration period = 250ms;

clock::time_point at(clock::duration since_epoch) {
  return clock::time_point(since_epoch);
}

TEST(clock_grid, OnGridRoundsUpToAWholeStep) {
  EXPECT_EQ(on_grid(at(1000ms), 250ms), at(1000ms));
  EXPECT_EQ(on_grid(at(1000ms + 1ns), 250ms), at(1250ms));
  EXPECT_EQ(on_grid(at(1249ms), 250ms), at(1250ms));
  EXPECT_EQ(on_grid(at(-100ms), 250ms), at(0ms));
  EXPECT_EQ(on_grid(at(1234ms), clock::duration::zero()), at(1234ms));
}

TEST(clock_grid, NextPeriodLiesOnTheGridWithinAPeriod) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::int64_t> ns(0, std::int64_t{1} << 50);
  for (int i = 0; i < 10000; ++i) {
    const auto last = at(std::chrono::nanoseconds(ns(rng)));
    const auto next = next_period(last, period);
    EXPECT_EQ(next.time_since_epoch() % period, clock::duration::zero());
    // Never later than a period after the last run: a peer's heartbeat detection and a row's
    // expiry count on one per period.
    EXPECT_GT(next, last);
    EXPECT_LE(next - last, period);
  }
}

TEST(clock_grid, WorkKeepingToTheGridRunsOncePerPeriodDespiteLateness) {
  auto grid = at(period * 1000);
  for (const auto late : {0ms, 1ms, 30ms, 62ms, 249ms}) {
    const auto next = next_period(grid + late, period);
    EXPECT_EQ(next, grid + period) << "ran " << late.count() << " ms late";
    grid = next;
  }
}

TEST(clock_grid, ProcessesStartedApartRunTogetherFromTheirSecondPeriod) {
  // Two processes' timers: their first runs unrelated, each of them a few milliseconds late.
  auto a = next_period(at(123456789ns), period);
  auto b = next_period(at(987654321ns), period);
  for (int i = 0; i < 5; ++i) {
    a = next_period(a + 3ms, period);
    b = next_period(b + 11ms, period);
  }
  EXPECT_EQ((a - b) % period, clock::duration::zero());
}

TEST(clock_grid, NoPeriodMeansNever) {
  EXPECT_EQ(next_period(at(5s), clock::duration::zero()), clock::time_point::max());
}

}  // namespace
}  // namespace galaxies::base
