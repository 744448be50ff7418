// What every fault-test fixture does: skip (saying why) where isolation is impossible, print
// figures, form the cluster, and check the whole history at the end of a test.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "fault_cluster.hpp"

namespace galaxies::test::fault {

// Forming a cluster of namespaced hosts on a noisy 2-core machine: bounded, generously.
inline constexpr std::chrono::milliseconds formation_deadline{30000};

// One item per line, indented: for failure messages listing violations or missing events.
inline std::string lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += "  " + s + "\n";
  return out;
}

class fault_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!netns::unavailable_reason().empty())
      GTEST_SKIP() << "fault tests need isolation: " << netns::unavailable_reason();
  }

  // Figures are printed, not judged: timing goals live in benchmarks.
  static void report(const std::string& key, const std::vector<double>& ms) {
    std::printf("[fault] %s: %s\n", key.c_str(), summary(ms).c_str());
    std::fflush(stdout);
  }
  static void note(const std::string& text) {
    std::printf("[fault] %s\n", text.c_str());
    std::fflush(stdout);
  }

  // Forms the cluster and waits for traffic on every pair, or fails the test.
  static void form(fault_cluster& c) {
    ASSERT_EQ(c.wait_formed(formation_deadline), "") << c.master_logs();
    ASSERT_EQ(c.wait_traffic(), "") << c.master_logs();
  }

  // Once traffic flows again on every pair, drains it and checks the whole history.
  static void expect_clean_history(fault_cluster& c) {
    EXPECT_EQ(c.wait_traffic(), "") << "traffic did not resume on every pair";
    const auto violations = c.quiesce_and_check();
    EXPECT_TRUE(violations.empty()) << violations.size() << " violations:\n"
                                    << lines(violations) << "logs in " << c.dir();
  }
};

}  // namespace galaxies::test::fault
