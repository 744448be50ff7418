// `galaxies bench --quick`, run as the test command runs it, so that the tool cannot rot: the JSON
// has the documented shape, and galaxies lost nothing that send() accepted. Timings are printed by
// the tool, never judged here.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include "support/cluster.hpp"
#include "support/eventually.hpp"
#include "support/host_tools.hpp"

namespace galaxies::test {
namespace {

// The bench's own time limit, and ours above it.
constexpr int bench_time_limit_s = 100;
constexpr auto wait_limit = std::chrono::seconds(bench_time_limit_s + 20);

const std::vector<std::string> throughput_tests = {"send_64", "send_1k", "send_64_x4"};
const std::vector<std::string> request_tests = {"request_64", "request_64_x64"};

std::vector<std::string> expected_systems() {
  std::vector<std::string> systems = {"galaxies", "tcp", "relay"};
#ifdef GALAXIES_TEST_NATS
  systems.push_back("nats");
#endif
  return systems;
}

// One quick run for the whole suite: exit status, the document and the tool's stderr.
struct bench_run {
  int status = -1;
  nlohmann::json document;
  std::string log;
};

// `galaxies bench` with `args`, the JSON written to a file of its own.
bench_run run_bench(const std::vector<std::string>& args) {
  temp_dir dir;
  const std::string json_path = (dir.path() / "bench.json").string();
  const std::string log_path = (dir.path() / "bench.log").string();
  std::vector<std::string> argv = {cli_path(), "bench",        "--json",
                                   json_path,  "--time-limit", std::to_string(bench_time_limit_s)};
  argv.insert(argv.end(), args.begin(), args.end());
  tools::unique_fd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  const pid_t pid = tools::spawn(argv, log.get(), log.get());
  bench_run out;
  int status = 0;
  const bool exited = eventually(
      wait_limit, [&] { return ::waitpid(pid, &status, WNOHANG) == pid; },
      std::chrono::milliseconds(50));
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  out.status = exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream log_in(log_path);
  out.log.assign(std::istreambuf_iterator<char>(log_in), {});
  std::ifstream json_in(json_path);
  if (json_in) out.document = nlohmann::json::parse(json_in, nullptr, false);
  return out;
}

bench_run run_quick_bench() {
#ifdef GALAXIES_TEST_NATS
  return run_bench({"--quick", "--peer", "nats"});
#else
  return run_bench({"--quick"});
#endif
}

// Its log is printed whatever happens: the figures are worth seeing, and in a sanitizer build a
// report from any of its processes fails the test there (tests/CMakeLists.txt).
const bench_run& quick_run() {
  static const bench_run run = [] {
    auto r = run_quick_bench();
    std::cerr << "---- galaxies bench --quick (exit " << r.status << ")\n" << r.log << "----\n";
    return r;
  }();
  return run;
}

const nlohmann::json* find_test(const std::string& name) {
  for (const auto& t : quick_run().document.at("tests"))
    if (t.at("name") == name) return &t;
  return nullptr;
}

// {"median": x, "min": y, "max": z} with min <= median <= max.
void expect_figure(const nlohmann::json& system, const std::string& key, const std::string& where) {
  ASSERT_TRUE(system.contains(key)) << where << " has no " << key;
  const auto& f = system.at(key);
  for (const char* part : {"median", "min", "max"})
    ASSERT_TRUE(f.contains(part) && f.at(part).is_number()) << where << " " << key << "." << part;
  EXPECT_LE(f.at("min").get<double>(), f.at("median").get<double>()) << where << " " << key;
  EXPECT_LE(f.at("median").get<double>(), f.at("max").get<double>()) << where << " " << key;
}

void expect_systems(const std::string& test, const std::vector<std::string>& figures) {
  const auto* t = find_test(test);
  ASSERT_NE(t, nullptr) << "no test " << test;
  for (const auto& system : expected_systems()) {
    ASSERT_TRUE(t->at("systems").contains(system)) << test << " has no system " << system;
    for (const auto& key : figures)
      expect_figure(t->at("systems").at(system), key, test + "/" + system);
  }
}

class bench_cli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& run = quick_run();
    ASSERT_EQ(run.status, 0) << "galaxies bench --quick failed:\n" << run.log;
    ASSERT_TRUE(run.document.is_object()) << "no JSON document written:\n" << run.log;
  }
};

TEST_F(bench_cli, quick_run_reports_the_machine) {
  const auto& context = quick_run().document.at("context");
  for (const char* key : {"cores", "load_average_start", "load_average_end", "compiler", "commit"})
    EXPECT_TRUE(context.contains(key)) << "context has no " << key;
  EXPECT_GE(context.at("cores").get<int>(), 1);
}

TEST_F(bench_cli, throughput_tests_report_rate_and_counts_for_every_system) {
  for (const auto& test : throughput_tests)
    expect_systems(test, {"msgs_per_s", "sent", "arrived", "lost"});
}

TEST_F(bench_cli, request_tests_report_percentiles_and_rate_for_every_system) {
  for (const auto& test : request_tests)
    expect_systems(test, {"p50_us", "p99_us", "p999_us", "requests_per_s"});
}

TEST_F(bench_cli, slow_consumer_reports_neighbours_memory_and_delivery) {
  const auto* t = find_test("slow_consumer");
  ASSERT_NE(t, nullptr);
  const auto& g = t->at("systems").at("galaxies");
  for (const char* key :
       {"throughput_ratio", "p50_ratio", "p99_ratio", "sent", "refused", "arrived", "lost",
        "rss_kib_a_before", "rss_kib_a_during", "rss_kib_a_after", "rss_kib_b_before",
        "rss_kib_b_during", "rss_kib_b_after"})
    expect_figure(g, key, "slow_consumer/galaxies");
  ASSERT_TRUE(g.contains("delivered_all"));
  EXPECT_TRUE(g.at("delivered_all").at("all").is_boolean());
}

// A correctness claim, not a timing: what send() accepted arrived.
TEST_F(bench_cli, galaxies_loses_no_accepted_message) {
  for (const auto& test : throughput_tests) {
    const auto* t = find_test(test);
    ASSERT_NE(t, nullptr) << test;
    EXPECT_EQ(t->at("systems").at("galaxies").at("lost").at("max").get<double>(), 0) << test;
  }
}

// The same for a receiver that stops reading while it is flooded: its credit holds the flooder
// back, and everything accepted arrives once it reads again.
TEST_F(bench_cli, galaxies_loses_nothing_to_a_stopped_receiver) {
  const auto* t = find_test("slow_consumer");
  ASSERT_NE(t, nullptr);
  const auto& g = t->at("systems").at("galaxies");
  EXPECT_EQ(g.at("lost").at("max").get<double>(), 0);
  EXPECT_EQ(g.at("neighbour_lost").at("max").get<double>(), 0);
  EXPECT_TRUE(g.at("delivered_all").at("all").get<bool>());
}

// The floor of the same process layout (bench/scale_floor.hpp), measured first in the same run:
// every worker's view complete, every process stopped by its master or the driver, what they
// cost, and galaxies' figures as multiples of the floor's.
void expect_floor(const nlohmann::json& s, int hosts, int workers) {
  ASSERT_TRUE(s.contains("floor")) << "the floor is measured unless --no-floor";
  const auto& floor = s.at("floor");
  ASSERT_FALSE(floor.contains("error")) << floor.dump();
  EXPECT_EQ(floor.at("views_complete").get<int>(), hosts * workers);
  EXPECT_TRUE(floor.at("stopped_cleanly").get<bool>());
  expect_figure(floor, "view_complete_ms", "floor");
  EXPECT_GT(floor.at("view_complete_ms").at("min").get<double>(), 0)
      << "no view is complete before the last master started";
  const auto& cost = floor.at("cost_at_convergence");
  EXPECT_EQ(cost.at("masters").at("processes").get<int>(), hosts);
  EXPECT_EQ(cost.at("workers").at("processes").get<int>(), hosts * workers);
  EXPECT_EQ(cost.at("fork_servers").at("processes").get<int>(), 0)
      << "a floor master forks its workers itself";
  const auto& ratio = s.at("vs_floor").at("view_complete_median");
  ASSERT_TRUE(ratio.is_number()) << s.at("vs_floor").dump();
  EXPECT_NEAR(ratio.get<double>(),
              s.at("view_complete_ms").at("median").get<double>() /
                  floor.at("view_complete_ms").at("median").get<double>(),
              1e-9);
}

// `--scale H,W` on a small cluster: converged, each master linked to every other host, and what
// every process of it had cost when the views completed, read from /proc (the figures that say
// where a large start-up's CPU goes: bench/RESULTS.md, seventeenth session). With workers forked
// (--worker-start fork), each host's fork server is counted too. The exec run skips the floor
// (--no-floor); the fork run checks it.
void expect_scale_report(const std::string& worker_start) {
  constexpr int hosts = 3;
  constexpr int workers = 2;
  const bool floor = worker_start == "fork";
  std::vector<std::string> args{
      "--scale",        std::to_string(hosts) + "," + std::to_string(workers),
      "--hold",         "1",
      "--worker-start", worker_start};
  if (!floor) args.push_back("--no-floor");
  const auto run = run_bench(args);
  std::cerr << "---- galaxies bench --scale (exit " << run.status << ")\n" << run.log << "----\n";
  ASSERT_EQ(run.status, 0);
  ASSERT_TRUE(run.document.is_object() && run.document.contains("scale"));
  const auto& s = run.document.at("scale");
  EXPECT_TRUE(s.at("converged").get<bool>());
  EXPECT_EQ(s.at("worker_start"), worker_start);
  EXPECT_EQ(s.at("masters").at("links").at("min").get<double>(), hosts - 1);
  EXPECT_EQ(s.at("masters").at("links").at("max").get<double>(), hosts - 1);
  if (floor)
    expect_floor(s, hosts, workers);
  else
    EXPECT_FALSE(s.contains("floor")) << "--no-floor";

  const auto& cost = s.at("cost_at_convergence");
  double cpu_s = 0;
  const int servers = worker_start == "fork" ? hosts : 0;
  for (const auto& [kind, processes] :
       {std::pair{"masters", hosts}, {"workers", hosts * workers}, {"fork_servers", servers}}) {
    ASSERT_TRUE(cost.contains(kind)) << kind;
    const auto& c = cost.at(kind);
    EXPECT_EQ(c.at("processes").get<int>(), processes) << kind;
    cpu_s += c.at("cpu_s").get<double>();
    if (processes == 0) continue;
    expect_figure(c, "cpu_ms", kind);
    expect_figure(c, "minor_faults", kind);
    EXPECT_GT(c.at("minor_faults").at("min").get<double>(), 0)
        << kind << ": every process faults its pages in as it starts";
  }
  EXPECT_GT(cpu_s, 0) << "nine processes started and ran";
  EXPECT_NEAR(cost.at("cpu_s").get<double>(), cpu_s, 1e-9);
  const double cores = run.document.at("context").at("cores").get<double>();
  EXPECT_NEAR(cost.at("cpu_s_per_core").get<double>() * cores, cpu_s, 1e-9);
}

TEST(bench_cli_scale, reports_convergence_links_and_what_each_process_cost) {
  expect_scale_report("exec");
}

TEST(bench_cli_scale, counts_the_fork_servers_when_workers_are_forked) {
  expect_scale_report("fork");
}

}  // namespace
}  // namespace galaxies::test
