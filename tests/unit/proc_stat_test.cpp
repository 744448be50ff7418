// /proc/PID/stat, parsed once for the whole project: the command name is chosen by whoever runs
// the process (prctl, argv[0]) and may hold spaces, parentheses and digits, so the fields are
// counted from its last ')'.
#include "process/proc_stat.hpp"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace galaxies::process {
namespace {

// A line as Linux 6 writes it (52 fields), for a process named `name`.
std::string line_named(const std::string& name, char state = 'S') {
  return "4242 (" + name + ") " + state +
         " 17 4242 4242 0 -1 4194560 98 0 3 0 12 5 7 3 20 0 1 0 4926020 3133440 362 "
         "18446744073709551615 94647809015808 94647809035689 140734135750096 0 0 0 0 0 0 0 0 0 "
         "17 0 0 0 0 0 0 94647809051696 94647809053312 94648632799232 140734135757246 "
         "140734135757266 140734135757266 140734135758827 0\n";
}

TEST(proc_stat, reads_the_fields_after_the_name) {
  const auto stat = parse_proc_stat(line_named("galaxies"));
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->parent, 17);
  EXPECT_EQ(stat->minor_faults, 98u);
  EXPECT_EQ(stat->user_ticks, 12u);
  EXPECT_EQ(stat->system_ticks, 5u);
  EXPECT_EQ(stat->reaped_user_ticks, 7u);
  EXPECT_EQ(stat->reaped_system_ticks, 3u);
  EXPECT_EQ(stat->started_ticks, 4926020u);
}

TEST(proc_stat, a_name_with_spaces_and_parentheses_moves_no_field) {
  for (const std::string name : {"a b", "x) R 1 2 (y", ")", "((", " ", "1 2 3 4 5 6 7 8 9 10"}) {
    const auto stat = parse_proc_stat(line_named(name, 'R'));
    ASSERT_TRUE(stat) << name;
    EXPECT_EQ(stat->state, 'R') << name;
    EXPECT_EQ(stat->parent, 17) << name;
    EXPECT_EQ(stat->started_ticks, 4926020u) << name;
  }
}

TEST(proc_stat, anything_else_is_no_stat) {
  const std::string good = line_named("n");
  for (const std::string& text :
       {std::string(), std::string("4242 (n"), std::string("4242 (n) S"),
        good.substr(0, good.find(" 4926020")),  // ends before field 22
        std::string("4242 (n)  S 17") + good.substr(good.find(" 4242 0 -1")),  // two spaces
        std::string("4242 (n) SS") + good.substr(good.find(" 17 ")),
        std::string("4242 (n) 5") + good.substr(good.find(" 17 ")),
        std::string("4242 (n) S x17") + good.substr(good.find(" 4242 0 -1")),
        std::string("4242 (n) S 17 4242 4242 0 -1 4194560 -98") +
            good.substr(good.find(" 0 3 0 12")),
        std::string("4242 (n) S 17 4242 4242 0 -1 4194560 99999999999999999999") +
            good.substr(good.find(" 0 3 0 12"))}) {
    EXPECT_FALSE(parse_proc_stat(text)) << '"' << text << '"';
  }
}

// The live figures of this process, its threads, and no process at all.
TEST(proc_stat, of_this_process_and_its_threads) {
  ASSERT_EQ(::prctl(PR_SET_NAME, "odd) name (x"), 0);
  const auto self = read_proc_stat(::getpid());
  ASSERT_TRUE(self);
  EXPECT_EQ(self->state, 'R');  // it is running: reading this
  EXPECT_EQ(self->parent, ::getppid());
  EXPECT_GT(self->minor_faults, 0u);
  EXPECT_EQ(read_proc_stat(::getpid(), ::getpid())->parent, ::getppid());

  pid_t other = 0;
  std::thread t([&] { other = ::gettid(); });
  t.join();
  // join() returns once the thread clears its id, a moment before the kernel releases it.
  const auto joined = std::chrono::steady_clock::now();
  while (read_proc_stat(::getpid(), other)) {
    ASSERT_LT(std::chrono::steady_clock::now() - joined, std::chrono::seconds(10))
        << "a thread that ended keeps a stat";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_FALSE(read_proc_stat(0));
  EXPECT_FALSE(read_proc_stat(-1));
  EXPECT_FALSE(read_proc_stat(::getpid(), 0));
  EXPECT_GT(clock_ticks_per_second(), 0.0);
}

}  // namespace
}  // namespace galaxies::process
