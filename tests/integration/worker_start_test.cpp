// `galaxies host --worker-start fork` (options::start) end to end: workers forked from the fork
// server (process/fork_server.hpp) join the cluster and answer across hosts, a killed one is
// waited for and restarted by its master as an exec'd one is, and nothing outlives the host.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "support/cluster.hpp"
#include "support/eventually.hpp"
#include "support/host_tools.hpp"

namespace galaxies::test {
namespace {

constexpr auto deadline = 20s;  // generous: the machine is small and noisy

std::string cmdline_of(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/cmdline");
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// The pid of the worker in `slot` of `h`, running after `restarts` restarts; 0 if none in time.
pid_t running_worker(const host_process& h, std::size_t slot, int restarts) {
  pid_t pid = 0;
  eventually(deadline, [&] {
    const auto s = h.status();
    if (!s.is_object() || s["status"]["workers"].size() <= slot) return false;
    const auto& w = s["status"]["workers"][slot];
    if (w["state"] != "running" || w["restarts"] != restarts) return false;
    pid = w["pid"].get<pid_t>();
    return pid > 0;
  });
  return pid;
}

TEST(WorkerStart, ForkedWorkersAnswerAcrossHostsAreRestartedAndEndWithTheirHost) {
  cluster c("forked");
  host_options opts = with_workers(2);
  opts.extra_args = {"--worker-start", "fork"};
  auto& a = c.add_host(opts);
  auto& b = c.add_host(opts);
  const auto on_b = b.wait_started(2);
  ASSERT_EQ(a.wait_started(2).size(), 2u) << a.log();
  ASSERT_EQ(on_b.size(), 2u) << b.log();
  EXPECT_EQ(b.log().find("not forked"), std::string::npos) << b.log();

  // The master's children: its two workers and the server they were forked from, the master's
  // program as it was at run().
  const pid_t first = running_worker(b, 0, 0);
  const pid_t second = running_worker(b, 1, 0);
  ASSERT_GT(first, 0);
  ASSERT_GT(second, 0);
  auto children = tools::children_of(b.pid());
  std::erase_if(children, [&](pid_t p) { return p == first || p == second; });
  ASSERT_EQ(children.size(), 1u) << "no fork server beside the workers";
  const pid_t server = children[0];
  EXPECT_EQ(cmdline_of(server), cmdline_of(b.pid()));

  test_node client(a.unix_path(), c.name());
  ASSERT_TRUE(client.wait_ready());
  for (const auto& node : on_b) {
    const auto [ec, reply] = client.request(*node_id::parse(node), "echo", "across");
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(as_text(reply), "across");
  }

  // Waited for by its master, though the server forked it: restarted in its slot.
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  const pid_t restarted = running_worker(b, 0, 1);
  ASSERT_GT(restarted, 0) << b.status().dump();
  EXPECT_NE(restarted, first);
  EXPECT_EQ(tools::children_of(b.pid()).size(), 3u) << "the killed worker left something behind";

  b.terminate();
  EXPECT_FALSE(b.running());
  for (pid_t pid : {restarted, second, server})
    EXPECT_TRUE(eventually(deadline, [&] { return tools::state(pid) == 0; }))
        << "pid " << pid << " outlived its host";
}

}  // namespace
}  // namespace galaxies::test
