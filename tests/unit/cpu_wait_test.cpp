// What a process of this machine waited for a core, read from /proc/PID/schedstat: the parse,
// held to the kernel's format, and the figures of a live process, its main thread's and all its
// threads'.
#include "process/cpu_wait.hpp"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

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
  // No pid reaches pid_max.
  long pid_max = 0;
  std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
  ASSERT_GT(pid_max, 0);
  for (const pid_t pid : {0, -1, static_cast<pid_t>(pid_max)}) {
    EXPECT_FALSE(cpu_wait(pid)) << pid;
    EXPECT_FALSE(threads_cpu_wait(pid)) << pid;
  }
}

// Three threads spinning on one core wait for it in turns, while the main thread sleeps: the
// process's threads have waited, its main thread has not.
TEST(cpu_wait, the_threads_figure_counts_what_threads_other_than_the_main_one_waited) {
  const auto main_before = cpu_wait(::getpid());
  const auto threads_before = threads_cpu_wait(::getpid());
  if (!main_before || !threads_before) GTEST_SKIP() << "no /proc/PID/schedstat on this kernel";
  cpu_set_t one{};
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  std::atomic<bool> stop{false};
  std::vector<std::thread> spinners;
  for (int i = 0; i < 3; ++i)
    spinners.emplace_back([&] {
      ::sched_setaffinity(0, sizeof one, &one);
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  std::this_thread::sleep_for(300ms);
  // Read while they live: a thread that ended takes its figure along.
  const auto threads_after = threads_cpu_wait(::getpid());
  const auto main_after = cpu_wait(::getpid());
  stop = true;
  for (auto& t : spinners) t.join();
  ASSERT_TRUE(threads_after && main_after);
  const auto threads_waited = *threads_after - *threads_before;
  const auto main_waited = *main_after - *main_before;
  EXPECT_GE(threads_waited, 100ms) << "three threads shared one core for 300 ms";
  EXPECT_GT(threads_waited, main_waited + 50ms);
}

}  // namespace
}  // namespace galaxies::process
