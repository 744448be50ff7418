// The benchmark's driver: starts two hosts of this program on 127.0.0.1, attaches to one of them as
// a node, has one worker measure against the other (one test at a time, each right after the same
// test over the plain-TCP baseline), prints the medians and stops every process it started.
#pragma once

#include <string>
#include <vector>

namespace galaxies::bench {

struct driver_options {
  int runs = 5;
  bool quick = false;              // one short run: a smoke test of the benchmark itself
  std::string json_path;           // "" = the JSON after the table; "-" = only the JSON, on stdout
  std::string log_level = "warn";  // of the hosts
  int time_limit_s = 110;          // the whole benchmark, start-up and shutdown included
  std::vector<std::string> tests;  // the tests to run; empty = all
};

// The tests' names, in the order they run.
std::vector<std::string> test_names();

int run_driver(const driver_options& options);

}  // namespace galaxies::bench
