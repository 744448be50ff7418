// galaxies::run_loop: io_context::run() with polling between bursts of work.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <stdexcept>
#include <thread>

#include "galaxies/run.hpp"

namespace galaxies {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

class run_loop_test : public ::testing::TestWithParam<std::chrono::microseconds> {};

TEST_P(run_loop_test, ReturnsOnceTheWorkRunsOutLikeRun) {
  asio::io_context io(1);
  int ran = 0;
  asio::steady_timer timer(io, 2ms);
  timer.async_wait([&](std::error_code ec) {
    if (!ec) ++ran;
    asio::post(io, [&] { ++ran; });
  });
  run_loop(io, GetParam());
  EXPECT_EQ(ran, 2);
  EXPECT_TRUE(io.stopped());
}

TEST_P(run_loop_test, ReturnsWhenStoppedThoughWorkRemains) {
  asio::io_context io(1);
  auto guard = asio::make_work_guard(io);
  asio::steady_timer timer(io, 1ms);
  timer.async_wait([&](std::error_code) { io.stop(); });
  run_loop(io, GetParam());
  EXPECT_TRUE(io.stopped());
}

TEST_P(run_loop_test, RethrowsWhatAHandlerThrows) {
  asio::io_context io(1);
  asio::post(io, [] { throw std::runtime_error("from a handler"); });
  EXPECT_THROW(run_loop(io, GetParam()), std::runtime_error);
}

INSTANTIATE_TEST_SUITE_P(busy_poll, run_loop_test, ::testing::Values(0us, 100us),
                         [](const auto& info) {
                           return std::to_string(info.param.count()) + "us";
                         });

long voluntary_switches_of_this_thread() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_nvcsw;
}

// What the polling is for: work that keeps coming within the window is picked up without the
// loop's thread going to sleep (and its CPU being woken again) between one piece and the next.
TEST(run_loop, DoesNotSleepBetweenWorkThatComesSoonerThanTheWindow) {
  constexpr int events = 2000;
  constexpr auto spacing = 30us;
  asio::io_context io(1);
  auto guard = asio::make_work_guard(io);
  std::atomic<int> handled{0};
  long switches_at_first = 0;
  std::atomic<long> switches_in_between{-1};
  std::thread loop([&] { run_loop(io, 100us); });
  for (int i = 0; i < events; ++i) {
    asio::post(io, [&, i] {
      if (i == 0) switches_at_first = voluntary_switches_of_this_thread();
      if (i == events - 1)
        switches_in_between = voluntary_switches_of_this_thread() - switches_at_first;
      ++handled;
    });
    const auto next = clock::now() + spacing;
    while (clock::now() < next) {
    }
  }
  guard.reset();
  loop.join();
  ASSERT_EQ(handled, events);
  // Asleep between every two would be `events`; a loaded machine that stalls this thread for
  // longer than the window now and then costs a few sleeps each time.
  EXPECT_LT(switches_in_between, events / 4);
}

}  // namespace
}  // namespace galaxies
