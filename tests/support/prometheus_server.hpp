// A real Prometheus server started by a test (support/store_server.hpp does the process: free
// loopback port, private directory, stopped by PID, dead with the test): one scrape job over
// fixed targets, its TSDB in its private directory, logging warnings and errors only.
//
// SAFETY: it connects to every target it is given. Give it loopback targets only, and run it from
// a test binary that is isolated (support/isolation.hpp), as prometheus_test is.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/store_server.hpp"

namespace galaxies::test {

class prometheus_server final : public store_server {
 public:
  static bool available() { return on_path("prometheus"); }
  // Scrapes `targets` ("ip:port") as job `job` every `interval` (which also bounds each scrape).
  // Started and ready (GET /-/ready), or throws std::runtime_error with its log's tail.
  prometheus_server(std::string job, std::vector<std::string> targets,
                    std::chrono::milliseconds interval);
  ~prometheus_server() override = default;

  std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
  // GET /api/v1/query?query=PROMQL (an instant query, now): the parsed reply, or null when no
  // JSON came within `timeout`.
  nlohmann::json query(const std::string& promql, std::chrono::milliseconds timeout) const;

 private:
  std::vector<std::string> command() const override;
  bool probe(std::chrono::milliseconds timeout) const override;
};

}  // namespace galaxies::test
