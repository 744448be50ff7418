// `galaxies host --restart-* / --no-respawn` (options::restart) end to end: the CLI's options
// reach the master's supervisor. A slot whose worker keeps dying is restarted exactly as often as
// configured within the window, then given up (and says so), and stays empty; with respawn off
// the first exit gives it up. Workers are killed by the pid their master reports as live.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <thread>

#include "support/cluster.hpp"
#include "support/eventually.hpp"

namespace galaxies::test {
namespace {

constexpr auto deadline = 20s;  // generous: the machine is small and noisy

// Slot 0 of `h`'s status: {"slot", "pid", "state", "restarts"}; null when it does not answer.
nlohmann::json slot0(const host_process& h) {
  const auto s = h.status();
  if (!s.is_object() || !s["status"].contains("workers") || s["status"]["workers"].empty())
    return nullptr;
  return s["status"]["workers"][0];
}

// The pid of the worker running in slot 0 after `restarts` restarts; 0 if none came in time.
pid_t running_worker(const host_process& h, int restarts) {
  pid_t pid = 0;
  eventually(deadline, [&] {
    const auto w = slot0(h);
    if (w.is_null() || w["state"] != "running" || w["restarts"] != restarts) return false;
    pid = w["pid"].get<pid_t>();
    return pid > 0;
  });
  return pid;
}

// Waits until slot 0 is given up after `restarts` restarts, then checks that it stays so.
void expect_given_up(const host_process& h, int restarts) {
  ASSERT_TRUE(eventually(deadline, [&] { return slot0(h)["state"] == "given_up"; }))
      << slot0(h).dump() << "\n"
      << h.log();
  EXPECT_EQ(slot0(h)["restarts"], restarts);
  EXPECT_EQ(slot0(h)["pid"], 0);
  // Nothing more happens to it (a negative check: a short fixed wait is the point), well past
  // the backoff a restart would have waited.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(slot0(h)["state"], "given_up");
  EXPECT_EQ(slot0(h)["restarts"], restarts);
  EXPECT_TRUE(h.running()) << "a given-up slot does not end the host";
}

TEST(RestartOptions, ASlotIsRestartedTheConfiguredNumberOfTimesThenGivenUp) {
  cluster c("restarts");
  host_options opts = with_workers(1);
  opts.extra_args = {
      "--restart-max",       "2",    "--restart-backoff-ms", "10", "--restart-backoff-max-ms", "20",
      "--restart-window-ms", "60000"};
  auto& h = c.add_host(opts);
  for (int restarts = 0; restarts <= 2; ++restarts) {
    const pid_t pid = running_worker(h, restarts);
    ASSERT_GT(pid, 0) << "no worker after " << restarts << " restarts: " << slot0(h).dump();
    // Live and not reaped, as its master says: never a recycled pid.
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
  }
  expect_given_up(h, 2);
  EXPECT_NE(h.log().find("worker slot 0 exited 3 times in 60 s; not restarting it"),
            std::string::npos)
      << h.log();
}

TEST(RestartOptions, WithRespawnOffTheFirstExitGivesTheSlotUp) {
  cluster c("norespawn");
  host_options opts = with_workers(1);
  opts.extra_args = {"--no-respawn"};
  auto& h = c.add_host(opts);
  const pid_t pid = running_worker(h, 0);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  expect_given_up(h, 0);
  EXPECT_NE(h.log().find("not restarting it (respawn is off)"), std::string::npos) << h.log();
}

TEST(RestartOptions, NonsenseIsRefusedAtStartWithTheReason) {
  cluster c("badrestart");
  host_options opts = with_workers(1);
  opts.extra_args = {"--restart-backoff-ms", "500", "--restart-backoff-max-ms", "100"};
  auto& h = c.add_host(opts);
  ASSERT_TRUE(eventually(deadline, [&] { return !h.running(); })) << h.log();
  EXPECT_NE(h.log().find("max_backoff (100 ms) is below initial_backoff (500 ms)"),
            std::string::npos)
      << h.log();
}

}  // namespace
}  // namespace galaxies::test
