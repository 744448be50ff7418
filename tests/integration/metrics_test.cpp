// `galaxies host --http`: a real master's /metrics on loopback is what promtool accepts and holds
// the figures an operator alerts on (workers running, nothing dropped, registry up, its link to
// a second host with heartbeats flowing); an unknown path is 404; a non-loopback address is
// refused unless --insecure.
//
// SAFETY: everything here talks to 127.0.0.1 only. The refused address (10.1.2.3) is neither
// bound nor sent to: monitor::http_service refuses it before it binds anything.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/cluster.hpp"
#include "support/eventually.hpp"
#include "support/host_tools.hpp"
#include "support/http_get.hpp"
#include "support/metrics_samples.hpp"
#include "support/netns.hpp"
#include "support/store_server.hpp"

namespace galaxies::test {
namespace {

using clock = std::chrono::steady_clock;

constexpr auto start_deadline = 30s;
constexpr auto http_timeout = 5s;
// A master rebuilds its snapshot at most every 250 ms: polling faster only re-reads it.
constexpr auto metrics_poll = 100ms;
constexpr auto promtool_limit = 30s;
const std::string http_flag = "--http";
const std::string any_loopback_port = "127.0.0.1:0";

double ms_since(clock::time_point start) {
  return std::chrono::duration<double, std::milli>(clock::now() - start).count();
}

// Where a host serves HTTP, from its status; "" when it has not said within the deadline.
std::string wait_http_address(const host_process& h) {
  std::string http;
  eventually(
      start_deadline,
      [&] {
        const auto s = h.status();
        http = s.is_null() ? "" : s["status"].value("http", "");
        return !http.empty();
      },
      metrics_poll);
  return http;
}

// Reads /metrics until `done` holds for the page; the last page read (or the last error).
struct metrics_reader {
  std::string address;
  std::string text;
  std::string content_type;
  metrics_page page;
  std::string error;

  bool wait(std::chrono::milliseconds deadline,
            const std::function<bool(const metrics_page&)>& done) {
    return eventually(
        deadline,
        [&] {
          const auto reply = http_get(address, "/metrics", http_timeout);
          if (reply.status != 200) {
            error = reply.status == 0 ? reply.error : "HTTP " + std::to_string(reply.status);
            return false;
          }
          error.clear();
          text = reply.body;
          content_type = reply.header("Content-Type");
          page = parse_metrics(text);
          return done(page);
        },
        metrics_poll);
  }
  std::string problem() const { return "last error: " + error + "\nlast page:\n" + text; }
};

struct promtool_result {
  int status = -1;
  std::string output;
};

// `promtool check metrics` on `text`, fed on its stdin; its exit status and everything it said.
promtool_result promtool_check(const std::string& text, const std::filesystem::path& dir) {
  const auto file = dir / "metrics.txt";
  std::ofstream(file) << text;
  const auto r = netns::run_command(
      {"/bin/sh", "-c", "exec promtool check metrics < \"$1\"", "sh", file.string()},
      promtool_limit);
  return {r.status, r.output};
}

// promtool accepts the page and has nothing to say about it (no lint complaint either).
void expect_promtool_accepts(const std::string& text, const std::filesystem::path& dir) {
  if (find_on_path("promtool").empty()) {
    std::printf("[metrics] promtool is not installed: the page is not checked by it\n");
    return;
  }
  const auto r = promtool_check(text, dir);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "") << "promtool complained:\n" << r.output;
}

std::set<int> worker_pids(const host_process& h) {
  std::set<int> pids;
  const auto s = h.status();
  if (s.is_null()) return pids;
  for (const auto& n : s["status"].value("nodes", nlohmann::json::array()))
    if (n.value("kind", "") == "worker") pids.insert(n.value("pid", 0));
  return pids;
}

bool running(const metrics_page& page, const char* slot) {
  return page.value("galaxies_worker_state", {{"slot", slot}, {"state", "running"}}) == 1.0;
}

TEST(metrics, a_host_serves_valid_metrics_with_its_workers_running) {
  const auto start = clock::now();
  cluster c("metrics");
  host_options opts = with_workers(2);
  opts.extra_args = {http_flag, any_loopback_port};
  auto& h = c.add_host(opts);
  ASSERT_EQ(h.wait_started(2, start_deadline).size(), 2u) << h.log();
  metrics_reader metrics;
  metrics.address = wait_http_address(h);
  ASSERT_FALSE(metrics.address.empty()) << "no HTTP address in its status\n" << h.log();

  ASSERT_TRUE(metrics.wait(start_deadline, [](const metrics_page& p) {
    return running(p, "0") && running(p, "1");
  })) << metrics.problem();
  const double ready_ms = ms_since(start);
  EXPECT_TRUE(metrics.page.problems.empty()) << metrics.page.problems.front();
  EXPECT_TRUE(metrics.content_type.starts_with("text/plain; version=0.0.4"))
      << metrics.content_type;
  expect_promtool_accepts(metrics.text, c.dir());

  const auto& page = metrics.page;
  EXPECT_EQ(page.value("galaxies_host_info", {{"host", h.host_id()}, {"cluster", "metrics"}}), 1.0);
  EXPECT_EQ(page.value("galaxies_dropped_frames_total"), 0.0);
  EXPECT_EQ(page.value("galaxies_worker_state", {{"slot", "0"}, {"state", "running"}}), 1.0);
  EXPECT_EQ(page.value("galaxies_worker_state", {{"slot", "1"}, {"state", "running"}}), 1.0);
  EXPECT_GT(page.value("process_open_fds").value_or(0), 0.0);
  EXPECT_EQ(page.value("galaxies_registry_up"), 1.0);
  // Each slot shows the pid the master lists for its node.
  const std::set<int> pids = worker_pids(h);
  std::set<int> shown;
  for (const char* slot : {"0", "1"})
    shown.insert(static_cast<int>(page.value("galaxies_worker_pid", {{"slot", slot}}).value_or(0)));
  EXPECT_EQ(shown, pids);

  // Each worker's channel keeps carrying frames (its heartbeats), beyond its hello.
  const auto frames = [](const metrics_page& p, const char* slot) {
    return p.value("galaxies_worker_received_frames_total", {{"slot", slot}}).value_or(0);
  };
  const double before0 = frames(page, "0"), before1 = frames(page, "1");
  EXPECT_TRUE(metrics.wait(
      start_deadline,
      [&](const metrics_page& p) { return frames(p, "0") > before0 && frames(p, "1") > before1; }))
      << "from " << before0 << " and " << before1 << "; " << metrics.problem();
  std::printf("[metrics] both workers shown running %.0f ms after the host was started\n",
              ready_ms);
}

TEST(metrics, an_unknown_path_is_404) {
  cluster c("metrics");
  host_options opts = with_workers(0);
  opts.extra_args = {http_flag, any_loopback_port};
  auto& h = c.add_host(opts);
  const std::string http = wait_http_address(h);
  ASSERT_FALSE(http.empty()) << "no HTTP address in its status\n" << h.log();

  for (const char* path : {"/no/such/page", "/metrics/extra", "/status.json.bak"}) {
    const auto reply = http_get(http, path, http_timeout);
    EXPECT_EQ(reply.status, 404) << path << ": " << reply.error << reply.headers;
  }
  // What it does serve, for contrast: the status it says its address in.
  const auto status = http_get(http, "/status.json", http_timeout);
  ASSERT_EQ(status.status, 200) << status.error;
  const auto doc = nlohmann::json::parse(status.body, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << status.body;
  EXPECT_EQ(doc.value("http", ""), http);
}

TEST(metrics, two_hosts_show_their_link) {
  const auto start = clock::now();
  cluster c("metrics");
  host_options opts = with_workers(1);
  opts.extra_args = {http_flag, any_loopback_port};
  c.add_host(opts);
  c.add_host(opts);
  std::vector<metrics_reader> readers(2);
  std::vector<std::string> ids(2);
  for (std::size_t i = 0; i < 2; ++i) {
    ASSERT_EQ(c.host(i).wait_started(1, start_deadline).size(), 1u) << c.host(i).log();
    ids[i] = c.host(i).host_id();
    readers[i].address = wait_http_address(c.host(i));
    ASSERT_FALSE(readers[i].address.empty()) << c.host(i).log();
  }
  ASSERT_NE(ids[0], ids[1]);

  for (std::size_t i = 0; i < 2; ++i) {
    const std::map<std::string, std::string> peer{{"peer", ids[1 - i]}};
    auto linked = peer;
    linked["state"] = "linked";
    const auto frames = [&](const metrics_page& p) {
      return p.value("galaxies_link_received_frames_total", peer).value_or(0);
    };
    ASSERT_TRUE(readers[i].wait(start_deadline,
                                [&](const metrics_page& p) {
                                  return p.value("galaxies_link_state", linked) == 1.0 &&
                                         frames(p) > 0;
                                }))
        << "host " << i << " never showed its link to " << ids[1 - i] << "\n"
        << readers[i].problem();
    // Heartbeats keep flowing on the link.
    const double before = frames(readers[i].page);
    ASSERT_TRUE(readers[i].wait(start_deadline,
                                [&](const metrics_page& p) {
                                  return p.value("galaxies_link_state", linked) == 1.0 &&
                                         frames(p) > before;
                                }))
        << "no frame from " << ids[1 - i] << " after " << before << "\n"
        << readers[i].problem();
    const auto& page = readers[i].page;
    EXPECT_EQ(page.find("galaxies_link_state", peer).size(), 1u) << "one state at a time";
    EXPECT_EQ(page.value("galaxies_link_nodes", peer), 1.0);
    EXPECT_GT(page.value("galaxies_link_received_bytes_total", peer).value_or(0), 0.0);
    EXPECT_GE(page.value("galaxies_link_rtt_seconds", peer).value_or(-1), 0.0);
    EXPECT_EQ(page.value("galaxies_dropped_frames_total"), 0.0);
    expect_promtool_accepts(readers[i].text, c.dir());
  }
  std::printf("[metrics] both hosts showed their link with heartbeats %.0f ms after the start\n",
              ms_since(start));
}

// The exit status of `pid` once it exited within `deadline`; SIGKILLed and reaped otherwise.
std::optional<int> reap(pid_t pid, std::chrono::milliseconds deadline) {
  int status = 0;
  if (eventually(
          deadline, [&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 10ms))
    return status;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return std::nullopt;
}

TEST(metrics, http_on_a_non_loopback_address_needs_insecure) {
  cluster c("metrics");
  const auto log_path = c.dir() / "refused.log";
  tools::unique_fd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  ASSERT_GE(log.get(), 0);
  const pid_t pid =
      tools::spawn({cli_path(), "host", "--workers", "0", "--listen", any_loopback_port,
                    "--cluster", "metrics", "--registry", c.registry_url(), "--unix",
                    (c.dir() / "refused.sock").string(), http_flag, "10.1.2.3:0"},
                   log.get(), log.get());
  const auto status = reap(pid, start_deadline);
  std::stringstream text;
  text << std::ifstream(log_path).rdbuf();
  const std::string output = text.str();
  ASSERT_TRUE(status) << "still running after " << start_deadline.count() << " ms\n" << output;
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << "status " << *status;
  EXPECT_NE(output.find("--http 10.1.2.3:0 is not a loopback address"), std::string::npos)
      << output;
  EXPECT_NE(output.find("--insecure"), std::string::npos) << output;
  EXPECT_EQ(output.find("serving /metrics"), std::string::npos) << output;
}

}  // namespace
}  // namespace galaxies::test
