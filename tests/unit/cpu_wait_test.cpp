// What a process of this machine waited for a core, read from /proc/PID/schedstat: the parse,
// held to the kernel's format, and the figures of a live process, its main thread's and all its
// threads'.
#include "process/cpu_wait.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
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
    EXPECT_FALSE(threads_cpu_wait_meter(pid).waited(std::chrono::steady_clock::now())) << pid;
  }
}

// Three threads spinning on one core wait for it in turns, while the main thread sleeps: the
// process's threads have waited, its main thread has not.
TEST(cpu_wait, the_threads_figure_counts_what_threads_other_than_the_main_one_waited) {
  threads_cpu_wait_meter threads(::getpid());
  const auto main_before = cpu_wait(::getpid());
  const auto threads_before = threads.waited(std::chrono::steady_clock::now());
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
  const auto threads_after = threads.waited(std::chrono::steady_clock::now());
  const auto main_after = cpu_wait(::getpid());
  stop = true;
  for (auto& t : spinners) t.join();
  ASSERT_TRUE(threads_after && main_after);
  // The threads have ended: what they waited stays counted.
  const auto threads_ended = threads.waited(std::chrono::steady_clock::now());
  ASSERT_TRUE(threads_ended);
  EXPECT_GE(*threads_ended, *threads_after);
  const auto threads_waited = *threads_after - *threads_before;
  const auto main_waited = *main_after - *main_before;
  EXPECT_GE(threads_waited, 100ms) << "three threads shared one core for 300 ms";
  EXPECT_GT(threads_waited, main_waited + 50ms);
}

// ---- a wait still going on (cpu_wait_meter): child processes, run alone (CMakeLists.txt) ----

bool pin_to(int cpu) {
  cpu_set_t set{};
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

// A child process that `body` runs in; killed and reaped at the end of the test.
class child {
 public:
  template <typename Body>
  explicit child(Body body) : pid_(::fork()) {
    if (pid_ == 0) {
      body();
      ::_exit(0);
    }
  }
  ~child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

// Time on a cpu of process `pid`'s thread `tid`, from the kernel's own line; -1 when unreadable.
std::chrono::nanoseconds on_cpu_of(pid_t pid, pid_t tid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/schedstat");
  std::string line;
  std::getline(in, line);
  const auto fields = parse_schedstat_fields(line);
  return fields ? fields->on_cpu : std::chrono::nanoseconds{-1};
}

// Spins forever. A loop with no side effect may be assumed to end (C++ forward progress): clang
// drops it.
[[noreturn]] void spin() {
  volatile std::uint64_t spins = 0;
  for (;;) spins = spins + 1;
}

// A real-time thread that holds core `cpu` while it lives (at most 500 ms: the kernel's real-time
// throttling allows 950 ms a second), or could not become real-time (no CAP_SYS_NICE).
class core_holder {
 public:
  explicit core_holder(int cpu)
      : thread_([this, cpu] {
          pin_to(cpu);
          const sched_param priority{.sched_priority = 1};
          if (::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &priority) != 0) {
            state_ = -1;
            return;
          }
          state_ = 1;
          const auto until = std::chrono::steady_clock::now() + 500ms;
          while (!release_.load(std::memory_order_relaxed) &&
                 std::chrono::steady_clock::now() < until) {
          }
        }) {
    while (state_ == 0) std::this_thread::yield();
  }
  ~core_holder() { release(); }
  bool holds() const { return state_ > 0; }
  void release() {
    release_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<int> state_{0};  // 1: holds the core, -1: could not become real-time
  std::atomic<bool> release_{false};
  std::thread thread_;
};

// Waits until `pid`'s thread `tid` has run (its time on a cpu moved), within 10 s.
::testing::AssertionResult runs(pid_t pid, pid_t tid) {
  const auto from = std::chrono::steady_clock::now();
  const auto before = on_cpu_of(pid, tid);
  while (on_cpu_of(pid, tid) <= before) {
    if (std::chrono::steady_clock::now() - from > 10s)
      return ::testing::AssertionFailure() << "thread " << tid << " never ran";
    std::this_thread::sleep_for(1ms);
  }
  return ::testing::AssertionSuccess();
}

constexpr int blocked_cpu = 1;

// Why the tests below cannot run here: they need one core to block and one to watch from.
std::string missing_here() {
  if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) return "needs one core to block, one to watch";
  if (!cpu_wait(::getpid())) return "no /proc/PID/schedstat on this kernel";
  return {};
}

// A process runnable on a core that a real-time thread holds neither runs nor ends its wait, so
// its run_delay stands still however long it waits: the meter counts that wait as it goes, and
// never goes back once the wait ends and the kernel counts it.
TEST(cpu_wait_meter, counts_a_wait_that_has_not_ended) {
  if (const auto missing = missing_here(); !missing.empty()) GTEST_SKIP() << missing;
  ASSERT_TRUE(pin_to(0));
  const child spinner([] {
    pin_to(blocked_cpu);
    spin();
  });
  ASSERT_GT(spinner.pid(), 0);
  ASSERT_TRUE(runs(spinner.pid(), spinner.pid()));

  core_holder hog(blocked_cpu);
  if (!hog.holds()) GTEST_SKIP() << "no real-time priority here (CAP_SYS_NICE) to hold a core";
  std::this_thread::sleep_for(20ms);  // the spinner's last slice has ended: it waits
  cpu_wait_meter meter(spinner.pid());
  const auto first = meter.waited(std::chrono::steady_clock::now());
  std::this_thread::sleep_for(300ms);
  const auto during = meter.waited(std::chrono::steady_clock::now());
  hog.release();
  ASSERT_TRUE(first && during);
  EXPECT_GE(*during - *first, 250ms) << "queued for 300 ms behind a real-time thread";

  // Once the spinner runs again, the kernel has counted the whole wait: the figure stands.
  ASSERT_TRUE(runs(spinner.pid(), spinner.pid()));
  const auto after = meter.waited(std::chrono::steady_clock::now());
  ASSERT_TRUE(after);
  EXPECT_GE(*after, *during);
  EXPECT_GE(*cpu_wait(spinner.pid()), *during - 20ms) << "the kernel's figure caught up";
}

// The same wait on a thread other than the main one, which sleeps: a master's registration runs
// on its registry's thread. The threads' meter counts it as it goes; the main thread's does not.
TEST(cpu_wait_meter, of_all_threads_counts_a_wait_of_another_thread_that_has_not_ended) {
  if (const auto missing = missing_here(); !missing.empty()) GTEST_SKIP() << missing;
  ASSERT_TRUE(pin_to(0));
  int tid_pipe[2];
  ASSERT_EQ(::pipe(tid_pipe), 0);
  const child process([&] {
    std::thread([&] {
      pin_to(blocked_cpu);
      const pid_t tid = ::gettid();
      (void)!::write(tid_pipe[1], &tid, sizeof tid);
      spin();
    }).detach();
    for (;;) ::pause();
  });
  ASSERT_GT(process.pid(), 0);
  pid_t spinning = 0;
  ASSERT_EQ(::read(tid_pipe[0], &spinning, sizeof spinning), static_cast<ssize_t>(sizeof spinning));
  ::close(tid_pipe[0]);
  ::close(tid_pipe[1]);
  ASSERT_TRUE(runs(process.pid(), spinning));

  core_holder hog(blocked_cpu);
  if (!hog.holds()) GTEST_SKIP() << "no real-time priority here (CAP_SYS_NICE) to hold a core";
  std::this_thread::sleep_for(20ms);
  threads_cpu_wait_meter threads(process.pid());
  cpu_wait_meter main_thread(process.pid());
  const auto threads_first = threads.waited(std::chrono::steady_clock::now());
  const auto main_first = main_thread.waited(std::chrono::steady_clock::now());
  std::this_thread::sleep_for(300ms);
  const auto threads_during = threads.waited(std::chrono::steady_clock::now());
  const auto main_during = main_thread.waited(std::chrono::steady_clock::now());
  hog.release();
  ASSERT_TRUE(threads_first && threads_during && main_first && main_during);
  EXPECT_GE(*threads_during - *threads_first, 250ms) << "a thread queued for 300 ms";
  EXPECT_LT(*main_during - *main_first, 50ms) << "the main thread sleeps";
}

// A process that sleeps waits for no core, however long the meter watches it.
TEST(cpu_wait_meter, counts_no_wait_for_a_sleeping_process) {
  if (!cpu_wait(::getpid())) GTEST_SKIP() << "no /proc/PID/schedstat on this kernel";
  const child sleeper([] {
    for (;;) ::pause();
  });
  ASSERT_GT(sleeper.pid(), 0);
  cpu_wait_meter meter(sleeper.pid());
  const auto first = meter.waited(std::chrono::steady_clock::now());
  std::this_thread::sleep_for(200ms);
  const auto second = meter.waited(std::chrono::steady_clock::now());
  ASSERT_TRUE(first && second);
  EXPECT_LT(*second - *first, 50ms);
}

TEST(cpu_wait_meter, of_no_process_has_no_figure) {
  cpu_wait_meter meter(0);
  EXPECT_FALSE(meter.waited(std::chrono::steady_clock::now()));
}

}  // namespace
}  // namespace galaxies::process
