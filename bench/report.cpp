#include "report.hpp"

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <string>

namespace galaxies::bench {
namespace {

// The figures compared across systems, and how the table shows them.
struct headline {
  const char* key;
  const char* unit;
};
constexpr headline headlines[] = {{"msgs_per_s", "msg/s"}, {"lost", "msgs"},
                                  {"p50_us", "us"},        {"p99_us", "us"},
                                  {"p999_us", "us"},       {"requests_per_s", "req/s"}};
constexpr const char* compared[] = {"msgs_per_s", "p50_us", "p99_us", "requests_per_s"};

// What slow_consumer's table shows (its whole object is in the JSON).
constexpr headline slow_consumer_lines[] = {{"throughput_ratio", "flood/quiet"},
                                            {"p50_ratio", "flood/quiet"},
                                            {"p99_ratio", "flood/quiet"},
                                            {"msgs_per_s_quiet", "msg/s"},
                                            {"msgs_per_s_flood", "msg/s"},
                                            {"p99_us_quiet", "us"},
                                            {"p99_us_flood", "us"},
                                            {"sent", "msgs"},
                                            {"refused", "times"},
                                            {"lost", "msgs"},
                                            {"rss_kib_a_during", "KiB"},
                                            {"rss_kib_b_during", "KiB"}};

nlohmann::json figure(const std::vector<double>& runs) {
  return {{"median", median(runs)},
          {"min", *std::min_element(runs.begin(), runs.end())},
          {"max", *std::max_element(runs.begin(), runs.end())},
          {"runs", runs}};
}

nlohmann::json summarize_system(const std::vector<const run_record*>& runs) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, first] : runs.front()->figures.items()) {
    if (first.is_number()) {
      std::vector<double> values;
      for (const auto* r : runs) values.push_back(r->figures.at(key).get<double>());
      out[key] = figure(values);
    } else if (first.is_boolean()) {
      bool all = true;
      nlohmann::json values = nlohmann::json::array();
      for (const auto* r : runs) {
        all = all && r->figures.at(key).get<bool>();
        values.push_back(r->figures.at(key));
      }
      out[key] = {{"all", all}, {"runs", values}};
    } else {
      nlohmann::json values = nlohmann::json::array();
      for (const auto* r : runs) values.push_back(r->figures.at(key));
      out[key] = {{"runs", values}};
    }
  }
  return out;
}

// galaxies / base, run by run: the two figures of a ratio were measured seconds apart.
nlohmann::json ratios(const std::vector<const run_record*>& galaxies,
                      const std::vector<const run_record*>& base) {
  nlohmann::json out = nlohmann::json::object();
  for (const char* key : compared) {
    std::vector<double> values;
    for (const auto* g : galaxies) {
      for (const auto* b : base) {
        if (b->run != g->run || !g->figures.contains(key) || !b->figures.contains(key)) continue;
        const double denominator = b->figures.at(key).get<double>();
        if (denominator > 0) values.push_back(g->figures.at(key).get<double>() / denominator);
      }
    }
    if (!values.empty()) out[key] = figure(values);
  }
  return out;
}

std::string format_value(double value, const std::string& unit) {
  char text[32];
  if (unit == "us")
    std::snprintf(text, sizeof text, "%.1f", value);
  else if (unit == "ratio" || unit == "flood/quiet")
    std::snprintf(text, sizeof text, "%.2f", value);
  else if (value >= 1e6)
    std::snprintf(text, sizeof text, "%.2fM", value / 1e6);
  else if (value >= 1e4)
    std::snprintf(text, sizeof text, "%.1fk", value / 1e3);
  else
    std::snprintf(text, sizeof text, "%.0f", value);
  return text;
}

void print_figure(std::ostream& out, const std::string& label, const std::string& unit,
                  const nlohmann::json& f) {
  char line[200];
  const std::string range = format_value(f.at("min").get<double>(), unit) + "-" +
                            format_value(f.at("max").get<double>(), unit);
  std::snprintf(line, sizeof line, "  %-30s %11s %10s  [%s]\n", label.c_str(), unit.c_str(),
                format_value(f.at("median").get<double>(), unit).c_str(), range.c_str());
  out << line;
}

}  // namespace

nlohmann::json summarize(const std::vector<test_spec>& specs,
                         const std::vector<run_record>& records) {
  nlohmann::json tests = nlohmann::json::array();
  for (const auto& spec : specs) {
    nlohmann::json systems = nlohmann::json::object();
    std::vector<std::string> order;
    for (const auto& r : records)
      if (r.spec.name == spec.name &&
          std::find(order.begin(), order.end(), r.system) == order.end())
        order.push_back(r.system);
    const auto runs_of = [&](const std::string& system) {
      std::vector<const run_record*> runs;
      for (const auto& r : records)
        if (r.spec.name == spec.name && r.system == system) runs.push_back(&r);
      return runs;
    };
    nlohmann::json test_ratios = nlohmann::json::object();
    for (const auto& system : order) {
      systems[system] = summarize_system(runs_of(system));
      if (system != "galaxies")
        test_ratios["galaxies/" + system] = ratios(runs_of("galaxies"), runs_of(system));
    }
    tests.push_back({{"name", spec.name}, {"systems", systems}, {"ratios", test_ratios}});
  }
  return tests;
}

void print_table(std::ostream& out, const nlohmann::json& document) {
  const auto& context = document.at("context");
  out << "galaxies bench: " << context.at("runs") << " run(s), medians [min-max]; "
      << context.at("cores") << " cores, load " << context.at("load_average_start").dump()
      << " at the start, " << context.at("load_average_end").dump() << " at the end\n";
  for (const auto& test : document.at("tests")) {
    out << "\n" << test.at("name").get<std::string>() << "\n";
    const bool slow = test.at("name") == "slow_consumer";
    for (const auto& [system, figures] : test.at("systems").items()) {
      if (slow) {
        for (const auto& [key, unit] : slow_consumer_lines)
          if (figures.contains(key)) print_figure(out, system + " " + key, unit, figures.at(key));
        if (figures.contains("delivered_all"))
          out << "  " << system << " every accepted message reached the sink: "
              << (figures.at("delivered_all").at("all").get<bool>() ? "yes" : "NO") << "\n";
        continue;
      }
      for (const auto& [key, unit] : headlines)
        if (figures.contains(key)) print_figure(out, system + " " + key, unit, figures.at(key));
    }
    for (const auto& [name, by_figure] : test.at("ratios").items())
      for (const auto& [key, f] : by_figure.items())
        print_figure(out, name + " " + key, "ratio", f);
  }
}

}  // namespace galaxies::bench
