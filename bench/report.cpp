#include "report.hpp"

#include <cstdio>
#include <ostream>
#include <string>

namespace galaxies::bench {
namespace {

struct metric {
  const char* key;    // field of the result
  const char* label;  // in the table
  const char* unit;
};

std::vector<metric> metrics_of(test_kind kind) {
  if (kind == test_kind::throughput) return {{"msgs_per_s", "", "msg/s"}};
  return {{"p50_us", " p50", "us"}, {"p99_us", " p99", "us"}, {"requests_per_s", "", "req/s"}};
}

std::string describe(const test_spec& spec) {
  const std::string size = spec.payload % 1024 == 0 ? std::to_string(spec.payload / 1024) + " KiB"
                                                    : std::to_string(spec.payload) + " B";
  if (spec.kind == test_kind::throughput) return "send " + size;
  return "request " + size + ", " + std::to_string(spec.inflight) + " in flight";
}

std::string format_value(double value, const std::string& unit) {
  char text[32];
  if (unit == "us")
    std::snprintf(text, sizeof text, "%.1f", value);
  else if (value >= 1e6)
    std::snprintf(text, sizeof text, "%.2fM", value / 1e6);
  else if (value >= 1e3)
    std::snprintf(text, sizeof text, "%.1fk", value / 1e3);
  else
    std::snprintf(text, sizeof text, "%.0f", value);
  return text;
}

}  // namespace

nlohmann::json summarize_runs(const std::vector<test_spec>& specs,
                              const std::vector<run_record>& records) {
  nlohmann::json tests = nlohmann::json::array();
  for (const auto& spec : specs) {
    nlohmann::json test{{"spec", spec}, {"description", describe(spec)}};
    std::vector<const run_record*> runs;
    for (const auto& r : records)
      if (r.spec.name == spec.name) runs.push_back(&r);
    for (const auto& m : metrics_of(spec.kind)) {
      std::vector<double> g, b, ratio;
      for (const auto* r : runs) {
        const double gv = r->galaxies.at(m.key).get<double>();
        const double bv = r->baseline.at(m.key).get<double>();
        g.push_back(gv);
        b.push_back(bv);
        if (bv > 0) ratio.push_back(gv / bv);
      }
      test["metrics"][m.key] = {{"unit", m.unit},         {"label", m.label},
                                {"galaxies", median(g)},  {"baseline", median(b)},
                                {"ratio", median(ratio)}, {"galaxies_runs", g},
                                {"baseline_runs", b}};
    }
    if (spec.kind == test_kind::throughput) {
      // Where the messages that did not arrive went: refused at the sender, dropped on the way.
      std::vector<double> dropped, refused;
      for (const auto* r : runs) {
        const auto res = r->galaxies.get<throughput_result>();
        dropped.push_back(res.sent ? 100.0 * static_cast<double>(res.sent - res.arrived) /
                                         static_cast<double>(res.sent)
                                   : 0);
        refused.push_back(static_cast<double>(res.overloaded));
      }
      test["galaxies_dropped_percent"] = median(dropped);
      test["galaxies_overloaded_refusals"] = median(refused);
    }
    nlohmann::json raw = nlohmann::json::array();
    for (const auto* r : runs)
      raw.push_back({{"run", r->run}, {"galaxies", r->galaxies}, {"baseline", r->baseline}});
    test["runs"] = std::move(raw);
    tests.push_back(std::move(test));
  }
  return tests;
}

void print_table(std::ostream& out, const nlohmann::json& summary) {
  char line[160];
  std::snprintf(line, sizeof line, "%-38s %6s %10s %10s %8s\n", "test (medians)", "unit",
                "galaxies", "baseline", "ratio");
  out << line;
  for (const auto& test : summary) {
    for (const auto& [key, m] : test.at("metrics").items()) {
      const std::string unit = m.at("unit");
      const std::string name =
          test.at("description").get<std::string>() + m.at("label").get<std::string>();
      std::snprintf(line, sizeof line, "%-38s %6s %10s %10s %8.2f\n", name.c_str(), unit.c_str(),
                    format_value(m.at("galaxies").get<double>(), unit).c_str(),
                    format_value(m.at("baseline").get<double>(), unit).c_str(),
                    m.at("ratio").get<double>());
      out << line;
    }
  }
  for (const auto& test : summary) {
    if (!test.contains("galaxies_dropped_percent")) continue;
    std::snprintf(line, sizeof line,
                  "%s: galaxies dropped %.1f%% of the sent messages on the way, "
                  "send() refused %.0f times (overloaded)\n",
                  test.at("description").get<std::string>().c_str(),
                  test.at("galaxies_dropped_percent").get<double>(),
                  test.at("galaxies_overloaded_refusals").get<double>());
    out << line;
  }
}

}  // namespace galaxies::bench
