#include "support/prometheus_server.hpp"

#include <fstream>
#include <stdexcept>

#include "support/http_get.hpp"

namespace galaxies::test {

prometheus_server::prometheus_server(std::string job, std::vector<std::string> targets,
                                     std::chrono::milliseconds interval)
    : store_server("prometheus", "http", 1) {
  // Its default scrape timeout (10 s) is longer than a short interval, which Prometheus refuses.
  const std::string every = std::to_string(interval.count()) + "ms";
  std::ofstream config(dir_ / "prometheus.yml");
  config << "global:\n  scrape_interval: " << every << "\n  scrape_timeout: " << every
         << "\nscrape_configs:\n  - job_name: '" << job << "'\n    static_configs:\n"
         << "      - targets:\n";
  for (const auto& t : targets) config << "          - '" << t << "'\n";
  config.close();
  if (!config) throw std::runtime_error("cannot write " + (dir_ / "prometheus.yml").string());
  start();
}

std::vector<std::string> prometheus_server::command() const {
  return {"--config.file=" + (dir_ / "prometheus.yml").string(),
          "--storage.tsdb.path=" + (dir_ / "data").string(), "--web.listen-address=" + address(),
          "--log.level=warn"};
}

bool prometheus_server::probe(std::chrono::milliseconds timeout) const {
  return http_get(address(), "/-/ready", timeout).status == 200;
}

nlohmann::json prometheus_server::query(const std::string& promql,
                                        std::chrono::milliseconds timeout) const {
  const auto reply = http_get(address(), "/api/v1/query?query=" + url_encode(promql), timeout);
  if (reply.status == 0) return nullptr;
  auto parsed = nlohmann::json::parse(reply.body, nullptr, false);
  return parsed.is_discarded() ? nlohmann::json(nullptr) : parsed;
}

}  // namespace galaxies::test
