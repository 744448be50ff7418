#include "base/spin_governor.hpp"

#include <gtest/gtest.h>

namespace galaxies::base {
namespace {

using namespace std::chrono_literals;

TEST(spin_governor, StartsClosed) {
  EXPECT_EQ(spin_governor(100us).window(), 0ns);
}

TEST(spin_governor, AnIdlePeriodWithinTheCeilingOpensItThenDoublesItUpToTheCeiling) {
  spin_governor g(100us);
  g.idle_ended(10us);
  EXPECT_EQ(g.window(), 25us);  // a quarter of the ceiling at once
  g.idle_ended(30us);
  EXPECT_EQ(g.window(), 50us);
  g.idle_ended(60us);
  EXPECT_EQ(g.window(), 100us);
  g.idle_ended(100us);
  EXPECT_EQ(g.window(), 100us);
}

TEST(spin_governor, AnIdlePeriodCaughtByTheWindowLeavesIt) {
  spin_governor g(100us);
  g.idle_ended(40us);
  g.idle_ended(40us);
  ASSERT_EQ(g.window(), 50us);
  g.idle_ended(50us);
  g.idle_ended(1us);
  EXPECT_EQ(g.window(), 50us);
}

TEST(spin_governor, AnIdlePeriodBeyondTheCeilingHalvesItAndClosesItBelowAQuarter) {
  spin_governor g(100us);
  for (auto idle : {10us, 30us, 60us}) g.idle_ended(idle);
  ASSERT_EQ(g.window(), 100us);
  g.idle_ended(101us);
  EXPECT_EQ(g.window(), 50us);
  g.idle_ended(250ms);
  EXPECT_EQ(g.window(), 25us);
  g.idle_ended(250ms);
  EXPECT_EQ(g.window(), 0ns);
  g.idle_ended(250ms);
  EXPECT_EQ(g.window(), 0ns);
}

// A process at rest wakes for a timer a few times a second, and within a wake-up two events may
// follow each other closely: the window that opens closes again at the next long sleep.
TEST(spin_governor, AProcessAtRestClosesItAtEachLongSleep) {
  spin_governor g(100us);
  for (int tick = 0; tick < 100; ++tick) {
    g.idle_ended(5us);
    ASSERT_EQ(g.window(), 25us);
    g.idle_ended(250ms);
    ASSERT_EQ(g.window(), 0ns) << "tick " << tick;
  }
}

TEST(spin_governor, AZeroOrNegativeCeilingNeverOpens) {
  for (auto ceiling : {0ns, -5ns}) {
    spin_governor g(ceiling);
    g.idle_ended(0ns);
    g.idle_ended(1ns);
    EXPECT_EQ(g.window(), 0ns);
  }
}

}  // namespace
}  // namespace galaxies::base
