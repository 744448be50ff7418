// `galaxies host --log-format json`: a real host with a worker; everything on its stderr (the
// master's lines and its worker's, which shares it) is one JSON record per line.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "support/cluster.hpp"

namespace galaxies::test {
namespace {

TEST(LogFormat, JsonHostWritesOneRecordPerLineFromMasterAndWorker) {
  cluster c("logformat");
  auto opts = with_workers(1);
  opts.extra_args = {"--log-format", "json"};
  auto& h = c.add_host(opts);
  ASSERT_EQ(h.wait_started(1).size(), 1u) << h.log();
  const auto workers = h.worker_pids();
  // A worker logs nothing while all is well; stopping it logs its channel's close (at debug,
  // the harness's level), and the master waits for its workers before it exits.
  h.terminate();
  ASSERT_FALSE(h.running());

  const std::string log = h.log();
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back(), '\n');
  std::set<std::string> roles;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    const auto doc = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(doc.is_object()) << "not a JSON object: " << line;
    EXPECT_EQ(doc.size(), 5u) << line;
    for (const char* key : {"time", "level", "role", "msg"})
      ASSERT_TRUE(doc.contains(key) && doc[key].is_string()) << key << " in " << line;
    ASSERT_TRUE(doc.contains("pid") && doc["pid"].is_number_integer()) << line;
    const auto role = doc["role"].get<std::string>();
    const int pid = doc["pid"].get<int>();
    roles.insert(role);
    if (role == "master")
      EXPECT_EQ(pid, h.pid()) << line;
    else if (role == "worker")
      EXPECT_NE(std::find(workers.begin(), workers.end(), pid), workers.end()) << line;
    else
      ADD_FAILURE() << "unknown role: " << line;
  }
  EXPECT_EQ(roles, (std::set<std::string>{"master", "worker"})) << log;
}

}  // namespace
}  // namespace galaxies::test
