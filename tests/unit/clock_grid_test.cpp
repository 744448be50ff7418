#include "transport/heartbeat_schedule.hpp"

#include <gtest/gtest.h>

#include <random>

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;
constexpr clock::duration interval = 250ms;

clock::time_point at(clock::duration since_epoch) {
  return clock::time_point(since_epoch);
}

TEST(heartbeat_schedule, DueTimesLieOnTheSharedGridWithinBounds) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::int64_t> ns(0, std::int64_t{1} << 50);
  for (int i = 0; i < 10000; ++i) {
    const auto last = at(std::chrono::nanoseconds(ns(rng)));
    const auto due = next_heartbeat(last, interval);
    EXPECT_EQ(due.time_since_epoch() % interval, clock::duration::zero());
    // Never much earlier than an interval after the last write (the peer's detection counts on
    // one per interval), never as late as two.
    EXPECT_GE(due - last, interval * 3 / 4);
    EXPECT_LT(due - last, interval * 7 / 4);
  }
}

TEST(heartbeat_schedule, ALinkKeepingToTheGridSendsOncePerIntervalDespiteLateness) {
  auto grid = at(interval * 1000);
  for (const auto late : {0ms, 1ms, 30ms, 62ms}) {
    const auto due = next_heartbeat(grid + late, interval);
    EXPECT_EQ(due, grid + interval) << "sent " << late.count() << " ms late";
    grid = due;
  }
}

TEST(heartbeat_schedule, LinksStartedApartSendTogetherFromTheirSecondHeartbeat) {
  // Two links of different processes: their last writes unrelated, each of them sending a few
  // milliseconds after its heartbeat was due.
  auto a = next_heartbeat(at(123456789ns), interval);
  auto b = next_heartbeat(at(987654321ns), interval);
  for (int i = 0; i < 5; ++i) {
    a = next_heartbeat(a + 3ms, interval);
    b = next_heartbeat(b + 11ms, interval);
  }
  EXPECT_EQ((a - b) % interval, clock::duration::zero());
}

TEST(heartbeat_schedule, NoIntervalMeansNoHeartbeat) {
  EXPECT_EQ(next_heartbeat(at(5s), clock::duration::zero()), clock::time_point::max());
}

}  // namespace
}  // namespace galaxies::transport
