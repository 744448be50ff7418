#include "base/spin_governor.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace galaxies::base {
namespace {

using namespace std::chrono_literals;
using windows = std::vector<spin_governor::duration>;

// The window after each of `idles`, fed in turn to a fresh governor.
windows windows_after(spin_governor::duration ceiling, const windows& idles) {
  spin_governor g(ceiling);
  windows out;
  for (auto idle : idles) {
    g.idle_ended(idle);
    out.push_back(g.window());
  }
  return out;
}

TEST(spin_governor, StartsClosed) {
  EXPECT_EQ(spin_governor(100us).window(), 0ns);
}

TEST(spin_governor, AnIdlePeriodWithinTheCeilingOpensItAtAQuarterThenDoublesItUpToTheCeiling) {
  EXPECT_EQ(windows_after(100us, {10us, 30us, 60us, 100us}), (windows{25us, 50us, 100us, 100us}));
}

TEST(spin_governor, AnIdlePeriodCaughtByTheWindowLeavesIt) {
  EXPECT_EQ(windows_after(100us, {40us, 40us, 50us, 1us}), (windows{25us, 50us, 50us, 50us}));
}

TEST(spin_governor, AnIdlePeriodBeyondTheCeilingHalvesItAndClosesItBelowAQuarter) {
  EXPECT_EQ(windows_after(100us, {10us, 30us, 60us, 101us, 250ms, 250ms, 250ms}),
            (windows{25us, 50us, 100us, 50us, 25us, 0ns, 0ns}));
}

// A process at rest wakes for a timer a few times a second, and within a wake-up two events may
// follow each other closely: the window that opens closes again at the next long sleep.
TEST(spin_governor, AProcessAtRestClosesItAtEachLongSleep) {
  windows idles;
  windows expected;
  for (int tick = 0; tick < 100; ++tick) {
    idles.insert(idles.end(), {5us, 250ms});
    expected.insert(expected.end(), {25us, 0ns});
  }
  EXPECT_EQ(windows_after(100us, idles), expected);
}

TEST(spin_governor, AZeroOrNegativeCeilingNeverOpens) {
  EXPECT_EQ(windows_after(0ns, {0ns, 1ns}), (windows{0ns, 0ns}));
  EXPECT_EQ(windows_after(-5ns, {0ns, 1ns}), (windows{0ns, 0ns}));
}

}  // namespace
}  // namespace galaxies::base
