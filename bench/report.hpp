// From the runs' figures to the document: per test and system, each figure's median, min and max
// over the runs (and the runs themselves), the ratios galaxies/baseline taken run by run, and the
// table.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "results.hpp"

namespace galaxies::bench {

// One test of one run on one system.
struct run_record {
  test_spec spec;
  int run = 0;
  std::string system;      // "galaxies", "tcp", "relay", "nats"
  nlohmann::json figures;  // a flat object: numbers, and for slow_consumer a flag and a reason
};

// [{"name", "systems": {SYSTEM: {FIGURE: {"median", "min", "max", "runs"}}},
//   "ratios": {"galaxies/SYSTEM": {FIGURE: {...}}}}]. Flags become {"all", "runs"}, texts
// {"runs"}.
nlohmann::json summarize(const std::vector<test_spec>& specs,
                         const std::vector<run_record>& records);

// The document's tests as a table: medians with [min-max], then the ratios.
void print_table(std::ostream& out, const nlohmann::json& document);

}  // namespace galaxies::bench
