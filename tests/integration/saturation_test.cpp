// A machine that is merely busy must not make galaxies kill its own workers or declare peers gone
// (local health awareness, docs/protocol.md §8.1). 64 hosts x 8 workers (576 processes) run at
// a lower priority than eight busy loops this test starts, so on this machine's cores every event
// loop of the cluster runs late. `galaxies bench --scale` starts the cluster, waits until every
// view is complete, watches a quiet window, then kills one worker.
// Asserted: the cluster converges within the bench's time limit; in the window no worker is
// killed as silent or respawned, no host link is lost to a heartbeat timeout and no node sees a
// nodeLeft; the one kill the test makes reaches every node (a real failure is still seen).
// It caught masters whose loops waited up to a second for the file registry's directory lock,
// held by another master waiting for a core (bench/RESULTS.md, 2026-12-04, ninth session).
// Only deadlines for events; the figures are printed, never judged.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "support/cluster.hpp"
#include "support/eventually.hpp"
#include "support/host_tools.hpp"

namespace galaxies::test {
namespace {

// Each master with 63 host links and 8 worker channels.
constexpr int hosts = 64;
constexpr int workers_per_host = 8;
constexpr int busy_loops = 8;  // at normal priority, the cluster below them: the cores stay busy
// Since the registry left the loop (bench/RESULTS.md, 2026-12-04, ninth session) the scenario
// stays whole from nice 8 to 17 with or without local health; at 18 only with it; at 19 the
// cluster runs out of CPU itself. 8 leaves a wide margin on a slower machine.
constexpr int cluster_niceness = 8;
// Fewer refreshes cost fewer renames and reads. (It was chosen when the renames stalled the
// masters' loops; since they no longer do, the default TTL stays whole too: 2 runs of 2.)
constexpr int registry_ttl_ms = 9000;
constexpr int start_wave = 8;  // and they start 8 at a time, each wave once registered
constexpr int hold_s = 40;
// The bench's own limit (start-up, convergence, hold, kill, stop), and ours above it.
// Two runs with a 170 s limit took 175 and 185 s in all, and the second ran out before its kill
// could be seen: room for a slower start-up.
constexpr int bench_time_limit_s = 240;
constexpr auto wait_limit = std::chrono::seconds(bench_time_limit_s + 30);

// Busy loops started and stopped by PID.
class busy_loops_running {
 public:
  explicit busy_loops_running(int n) : null_(::open("/dev/null", O_WRONLY | O_CLOEXEC)) {
    for (int i = 0; i < n; ++i)
      pids_.push_back(
          tools::spawn({"/bin/sh", "-c", "while :; do :; done"}, null_.get(), null_.get()));
  }
  ~busy_loops_running() {
    for (pid_t pid : pids_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }

 private:
  tools::unique_fd null_;
  std::vector<pid_t> pids_;
};

struct scale_run {
  int status = -1;
  nlohmann::json scale;
  std::string log;
};

scale_run run_scale_bench() {
  temp_dir dir;
  const std::string json_path = (dir.path() / "scale.json").string();
  const std::string log_path = (dir.path() / "scale.log").string();
  const std::vector<std::string> argv = {
      "/usr/bin/nice",
      "-n",
      std::to_string(cluster_niceness),
      cli_path(),
      "bench",
      "--scale",
      std::to_string(hosts) + "," + std::to_string(workers_per_host),
      "--hold",
      std::to_string(hold_s),
      "--registry-ttl-ms",
      std::to_string(registry_ttl_ms),
      "--start-wave",
      std::to_string(start_wave),
      "--time-limit",
      std::to_string(bench_time_limit_s),
      "--json",
      json_path,
      "--log-level",
      "warn",
      "--no-floor"};  // churn is the question here, not speed
  tools::unique_fd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  const pid_t pid = tools::spawn(argv, log.get(), log.get());
  scale_run out;
  int status = 0;
  bool exited = false;
  const auto reaped = [&] { return exited = exited || ::waitpid(pid, &status, WNOHANG) == pid; };
  // The cluster starts on an otherwise quiet machine: below eight busy loops at normal priority,
  // 576 processes at nice 10 starting up do not get the CPU their handshakes need, and churn
  // (bench/RESULTS.md). The busy loops run from convergence on, through the quiet window, the
  // kill and the stop.
  const auto converged = [&] {
    std::ifstream in(log_path);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    return text.find("galaxies bench: converged") != std::string::npos;
  };
  // One deadline for both waits: the test must end (and stop the busy loops) before ctest's
  // TIMEOUT kills it.
  const auto until = std::chrono::steady_clock::now() + wait_limit;
  const auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::max(until - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration{}));
  };
  std::optional<busy_loops_running> loops;
  if (eventually(
          left(), [&] { return reaped() || converged(); }, std::chrono::milliseconds(100)) &&
      !exited)
    loops.emplace(busy_loops);
  eventually(left(), reaped, std::chrono::milliseconds(100));
  loops.reset();
  if (!exited) {
    ::kill(pid, SIGKILL);  // its hosts get SIGTERM from the kernel (PR_SET_PDEATHSIG)
    ::waitpid(pid, &status, 0);
  }
  out.status = exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream log_in(log_path);
  out.log.assign(std::istreambuf_iterator<char>(log_in), {});
  std::ifstream json_in(json_path);
  if (json_in) {
    const auto document = nlohmann::json::parse(json_in, nullptr, false);
    if (document.is_object() && document.contains("scale")) out.scale = document["scale"];
  }
  return out;
}

std::uint64_t counter(const nlohmann::json& scale, const char* when, const char* name) {
  return scale.at(when).at(name).get<std::uint64_t>();
}

TEST(saturation, a_saturated_machine_settles_instead_of_churning) {
  const scale_run run = run_scale_bench();
  // The tail of the log: the figures, and what the hosts had to say.
  const std::size_t tail = 6000;
  std::cout << (run.log.size() > tail ? run.log.substr(run.log.size() - tail) : run.log) << "\n";
  std::cout << run.scale.dump(2) << "\n";
  ASSERT_EQ(run.status, 0) << "galaxies bench --scale failed";
  ASSERT_TRUE(run.scale.is_object());
  const auto& s = run.scale;
  ASSERT_TRUE(s.value("converged", false))
      << s.value("views_complete", 0) << " of " << s.value("nodes", 0)
      << " views complete when the time limit came";
  ASSERT_TRUE(s.contains("at_convergence") && s.contains("after_hold"));
  EXPECT_EQ(s.at("at_convergence").at("masters_answering").get<int>(), hosts);
  EXPECT_EQ(s.at("after_hold").at("masters_answering").get<int>(), hosts);
  EXPECT_EQ(counter(s, "after_hold", "silent_workers_killed"),
            counter(s, "at_convergence", "silent_workers_killed"))
      << "a worker was killed for heartbeat timeout in the quiet window";
  EXPECT_EQ(counter(s, "after_hold", "silent_peers_lost"),
            counter(s, "at_convergence", "silent_peers_lost"))
      << "a host link was lost to a heartbeat timeout in the quiet window";
  EXPECT_EQ(counter(s, "after_hold", "workers_adopted"),
            counter(s, "at_convergence", "workers_adopted"))
      << "a worker was respawned in the quiet window";
  EXPECT_EQ(s.value("unexpected_node_left_during_hold", 1), 0)
      << "the observer saw a node leave in the quiet window";
  const auto& before = s.at("at_convergence").at("node_left_seen_by_workers");
  const auto& after = s.at("after_hold").at("node_left_seen_by_workers");
  EXPECT_EQ(before.at("workers_answering").get<int>(), hosts * workers_per_host);
  EXPECT_EQ(after.at("workers_answering").get<int>(), hosts * workers_per_host);
  EXPECT_EQ(after.at("sum"), before.at("sum")) << "workers saw nodes leave in the quiet window";
  // The one failure the test causes is still seen everywhere.
  EXPECT_EQ(s.value("node_left_reached", 0), s.value("node_left_expected", -1))
      << "the killed worker's nodeLeft did not reach every node";
  EXPECT_TRUE(s.value("stopped_cleanly", false));
  // Printed with the rest, not judged: how often a master's loop was blocked in the kernel.
  EXPECT_GT(s.at("hold_blocked_in_kernel").at("samples").get<std::uint64_t>(), 0u)
      << "the masters were not sampled during the hold";
}

}  // namespace
}  // namespace galaxies::test
