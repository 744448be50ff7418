// What a process of this machine waited for a core, read from /proc/PID/schedstat: the parse,
// held to the kernel's format, and the figure of a live process.
#include "process/cpu_wait.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

namespace galaxies::process {
namespace {

using namespace std::chrono_literals;

TEST(cpu_wait, the_second_field_of_a_schedstat_line_is_the_run_queue_wait) {
  EXPECT_EQ(parse_schedstat("8043811 11622466 3\n"), 11622466ns);
  EXPECT_EQ(parse_schedstat("0 0 0"), 0ns);
  EXPECT_EQ(parse_schedstat("182241352 22012584 537\n"), 22012584ns);
}

TEST(cpu_wait, anything_but_three_numbers_is_no_figure) {
  for (const char* text : {"", "\n", "1 2", "1 2 3 4", "1 -2 3", "a b c", "1 2 3\n\n", "1  2 x",
                           "1 2 3 ", "1 99999999999999999999 3"})
    EXPECT_FALSE(parse_schedstat(text)) << '"' << text << '"';
  // Past what a duration holds in nanoseconds (292 years).
  EXPECT_FALSE(parse_schedstat("1 18446744073709551615 3"));
}

TEST(cpu_wait, a_live_process_has_a_figure_that_never_goes_back) {
  const auto first = cpu_wait(::getpid());
  if (!first) GTEST_SKIP() << "this kernel keeps no /proc/PID/schedstat (CONFIG_SCHED_INFO)";
  for (int i = 0; i < 50; ++i) std::this_thread::yield();
  const auto second = cpu_wait(::getpid());
  ASSERT_TRUE(second);
  EXPECT_GE(*second, *first);
}

TEST(cpu_wait, no_process_no_figure) {
  EXPECT_FALSE(cpu_wait(0));
  EXPECT_FALSE(cpu_wait(-1));
  // No pid reaches pid_max.
  long pid_max = 0;
  std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
  ASSERT_GT(pid_max, 0);
  EXPECT_FALSE(cpu_wait(static_cast<pid_t>(pid_max)));
}

}  // namespace
}  // namespace galaxies::process
