// A real Prometheus server scrapes three hosts' /metrics (`galaxies host --http`): every target is
// up, so Prometheus parsed every page, and galaxies_host_info gives one series per host, each
// labelled with that host's id.
//
// SAFETY: Prometheus connects to what it is told to and listens on a port of its own. This binary
// brings its own main(): it runs inside a fresh network namespace with only `lo`
// (support/isolation.hpp), or every test skips.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "support/cluster.hpp"
#include "support/eventually.hpp"
#include "support/isolation.hpp"
#include "support/netns.hpp"
#include "support/prometheus_server.hpp"

namespace galaxies::test {
namespace {

using clock = std::chrono::steady_clock;

constexpr std::size_t host_count = 3;
constexpr auto start_deadline = 30s;
constexpr auto scrape_interval = 1s;
// A few scrape intervals, plus Prometheus's own start and a loaded machine's delays.
constexpr auto scraped_deadline = 60s;
constexpr auto query_timeout = 5s;
constexpr auto query_poll = 250ms;

double ms_since(clock::time_point start) {
  return std::chrono::duration<double, std::milli>(clock::now() - start).count();
}

// The series of an instant query's vector result; empty unless the query succeeded.
nlohmann::json vector_result(const nlohmann::json& reply) {
  if (!reply.is_object() || reply.value("status", "") != "success") return nlohmann::json::array();
  const auto& data = reply["data"];
  if (!data.is_object() || data.value("resultType", "") != "vector" || !data.contains("result") ||
      !data["result"].is_array())
    return nlohmann::json::array();
  return data["result"];
}

// The value of a vector sample, as Prometheus writes it: [time, "value"].
std::string sample_value(const nlohmann::json& series) {
  const auto it = series.find("value");
  if (it == series.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_string()) return {};
  return (*it)[1].get<std::string>();
}

std::string label(const nlohmann::json& series, const char* name) {
  const auto it = series.find("metric");
  return it != series.end() && it->is_object() ? it->value(name, "") : "";
}

class prometheus : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!netns::unavailable_reason().empty())
      GTEST_SKIP() << "the Prometheus test needs isolation: " << netns::unavailable_reason();
    if (!prometheus_server::available()) GTEST_SKIP() << "prometheus is not installed";
  }
};

TEST_F(prometheus, scrapes_three_hosts_and_labels_each_with_its_id) {
  const auto start = clock::now();
  cluster c("prom");
  host_options opts = with_workers(1);
  opts.extra_args = {"--http", "127.0.0.1:0"};
  for (std::size_t i = 0; i < host_count; ++i) c.add_host(opts);
  std::set<std::string> ids, targets;
  for (std::size_t i = 0; i < host_count; ++i) {
    auto& h = c.host(i);
    ASSERT_EQ(h.wait_started(1, start_deadline).size(), 1u) << h.log();
    std::string http;
    ASSERT_TRUE(eventually(
        start_deadline,
        [&] {
          const auto s = h.status();
          http = s.is_null() ? "" : s["status"].value("http", "");
          return !http.empty();
        },
        query_poll))
        << "host " << i << " shows no HTTP address\n"
        << h.log();
    ids.insert(h.host_id());
    targets.insert(http);
  }
  ASSERT_EQ(ids.size(), host_count);
  ASSERT_EQ(targets.size(), host_count);
  const double hosts_ms = ms_since(start);

  const auto launched = clock::now();
  prometheus_server server("galaxies", {targets.begin(), targets.end()}, scrape_interval);
  const double ready_ms = ms_since(launched);

  nlohmann::json info, up;
  const bool scraped = eventually(
      scraped_deadline,
      [&] {
        info = vector_result(server.query("galaxies_host_info", query_timeout));
        up = vector_result(server.query("up{job=\"galaxies\"}", query_timeout));
        if (info.size() != host_count || up.size() != host_count) return false;
        for (const auto& series : up)
          if (sample_value(series) != "1") return false;
        return true;
      },
      query_poll);
  const double scraped_ms = ms_since(launched);
  ASSERT_TRUE(scraped) << "galaxies_host_info: " << info.dump() << "\nup: " << up.dump()
                       << "\nprometheus log (tail):\n"
                       << server.log_tail();

  std::set<std::string> labelled, instances;
  for (const auto& series : info) {
    labelled.insert(label(series, "host"));
    instances.insert(label(series, "instance"));
    EXPECT_EQ(label(series, "job"), "galaxies") << series.dump();
    EXPECT_EQ(label(series, "cluster"), "prom") << series.dump();
    EXPECT_EQ(sample_value(series), "1") << series.dump();
  }
  EXPECT_EQ(labelled, ids);
  EXPECT_EQ(instances, targets);

  std::printf(
      "[prometheus] 3 hosts serving in %.0f ms; Prometheus ready %.0f ms after its launch, every "
      "target up and queried %.0f ms after it\n",
      hosts_ms, ready_ms, scraped_ms);
}

}  // namespace
}  // namespace galaxies::test

int main(int argc, char** argv) {
  galaxies::test::netns::run_isolated(argc, argv,
                                      {.name = "prometheus", .tools = {"ip"}, .loopback_up = true});
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
