// Reading the Prometheus text format (0.0.4) in tests, line by line: every sample with its labels
// unescaped, every HELP and TYPE, and what did not parse. Strict where a scrape would fail (a bad
// line is reported, not skipped silently) so that a test can assert there is nothing to report.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace galaxies::test {

struct metric_sample {
  std::string name;  // with its suffix ("_sum", "_count"), as written
  std::map<std::string, std::string> labels;
  double value = 0;
  std::string value_text;  // as written: "NaN", "+Inf", "18446744073709551615"
};

struct metrics_page {
  std::vector<metric_sample> samples;
  std::map<std::string, std::string> types;  // family -> counter, gauge, ...
  std::map<std::string, std::string> help;   // family -> text, unescaped
  std::vector<std::string> problems;         // "line N: why", one per line that did not parse

  // The samples named `name` whose labels include every pair of `match`.
  std::vector<const metric_sample*> find(
      std::string_view name, const std::map<std::string, std::string>& match = {}) const;
  // The value of the one sample `find` gives; nullopt for none or several.
  std::optional<double> value(std::string_view name,
                              const std::map<std::string, std::string>& match = {}) const;
};

metrics_page parse_metrics(std::string_view text);

}  // namespace galaxies::test
