// `galaxies bench --scale H,W`: H hosts of W workers each on 127.0.0.1, and what a cluster of
// that size costs and how it behaves: the time from the last host's start until every node's
// view is complete, each master's memory and links, the time a nodeLeft takes to reach every
// node once a worker is killed, and the churn meanwhile (workers killed as silent, respawns,
// host links lost to heartbeat timeouts, nodeLefts nobody caused, stretched silences). First, in
// the same run, the floor of the same layout (scale_floor.hpp), which galaxies' figures are
// compared with.
// Threading: the driver's thread only.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace galaxies::bench {

// The status (docs/protocol.md, status_reply) of each master of `cluster` listening on one of
// `unix_paths`, those that answered; the CLI provides it. Not through the registry: on a
// saturated machine rows may lapse while their masters run.
using status_source = std::function<std::vector<nlohmann::json>(
    const std::vector<std::string>& unix_paths, const std::string& cluster)>;

struct scale_options {
  int hosts = 0;
  int workers = 0;
  int hold_s = 10;          // the quiet window watched for churn after convergence
  int max_stretch = 0;      // the hosts' heartbeat max_stretch; 0: the library's default
  int registry_ttl_ms = 0;  // the hosts' registry row TTL; 0: the library's default
  int busy_poll_us = -1;    // the hosts' options::busy_poll; -1: the library's default
  int start_wave = 0;       // hosts started at once before waiting for their rows; 0: all at once
  std::string worker_start = "exec";  // the hosts' options::start: "exec" or "fork"
  bool floor = true;  // also measure the floor of the process layout first (scale_floor.hpp)
  int time_limit_s = 600;
  std::string log_level = "warn";
  status_source statuses;
};

// Runs the scale test with its files in `dir`; the document is {"context", "scale": {...}}.
// Every process it starts is stopped by PID before it returns; a cluster that does not converge
// within the time limit is reported as such (with how far it got), not thrown.
nlohmann::json run_scale(const scale_options& options, const std::string& dir,
                         nlohmann::json context);

// The document's scale figures as a table.
void print_scale_table(std::ostream& out, const nlohmann::json& document);

}  // namespace galaxies::bench
