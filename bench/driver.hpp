// The benchmark's driver (`galaxies bench`): starts the systems it compares (galaxies' two hosts,
// the relay processes, optionally a NATS cluster), runs every test on each system in turn, run
// after run (the order of the systems rotating from run to run), prints medians with min-max and
// the ratios from the same runs, and stops every process it started, by PID.
#pragma once

#include <string>
#include <vector>

#include "scale_run.hpp"

namespace galaxies::bench {

struct driver_options {
  int runs = 5;
  bool quick = false;              // one short run: a smoke test of the benchmark itself
  std::string json_path;           // "" = the table only; "-" = only the JSON, on stdout
  std::string log_level = "warn";  // of the hosts
  int time_limit_s = 600;          // the whole benchmark, start-up and shutdown included
  std::vector<std::string> tests;  // the tests to run; empty = all
  std::vector<std::string> peers;  // optional systems: "nats"
  // --scale H,W (then the messaging tests do not run): see scale_run.hpp.
  int scale_hosts = 0;
  int scale_workers = 0;
  int hold_s = 10;
  int max_stretch = 0;      // 0: the library's default
  int registry_ttl_ms = 0;  // the hosts' registry row TTL; 0: the library's default
  int busy_poll_us = -1;    // the hosts' options::busy_poll; -1: the library's default
  int start_wave = 0;       // hosts started at once before waiting for their rows; 0: all at once
  std::string worker_start = "exec";  // the hosts' options::start: "exec" or "fork"
  bool scale_floor = true;            // --scale: measure the layout's floor in the same run
  status_source statuses;
};

// The tests' names, in the order they run.
std::vector<std::string> test_names();

int run_driver(const driver_options& options);

}  // namespace galaxies::bench
