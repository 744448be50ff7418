// Medians over runs, ratios against the baseline, the table and the JSON document.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <vector>

#include "results.hpp"

namespace galaxies::bench {

// One test of one run: galaxies and the baseline, measured back to back.
struct run_record {
  test_spec spec;
  int run = 0;
  nlohmann::json galaxies;  // throughput_result or latency_result
  nlohmann::json baseline;
};

// The summary: per test and metric, the medians over runs of galaxies, of the baseline and of the
// per-run ratio galaxies/baseline (each ratio from two measurements taken seconds apart).
nlohmann::json summarize_runs(const std::vector<test_spec>& specs,
                              const std::vector<run_record>& records);

void print_table(std::ostream& out, const nlohmann::json& summary);

}  // namespace galaxies::bench
