// The floor of `--scale H,W`: what the process layout alone costs to converge, measured in the
// same run as galaxies. H master processes, started as the galaxies hosts are (this program
// again, exec'd); each forks its W workers (no exec, no server in between) and links to every
// other master over 127.0.0.1 TCP, finding them through port files in a directory (inotify, no
// polling). A worker says hello with its pid; a master sends its W pids once on each link and
// passes every pid it reads from a link straight to each of its workers. A worker's view is
// complete when it has read H x W - 1 other pids. No framing, no handshake, no heartbeat, no
// registry: blocking writes of 8-byte ids and one poll() loop per master.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "results.hpp"

namespace galaxies::bench {

// The hidden CLI subcommand that runs one master of the floor.
inline constexpr const char* scale_floor_subcommand = "bench-scale-floor";

struct scale_floor_options {
  std::string dir;  // peers/ (the masters' port files) and done.sock (the driver's)
  int index = 0;    // this master's, in [0, hosts)
  int hosts = 0;
  int workers = 0;
};

// One master: forks its workers, links, relays, and on SIGTERM stops its workers by PID and
// returns 0; returns non-zero on a start-up error.
int run_scale_floor_master(const scale_floor_options& options);

// What the processes cost by convergence, from the masters' and the workers' pids.
using cost_reader =
    std::function<nlohmann::json(const std::vector<int>& masters, const std::vector<int>& workers)>;

// The driver's side: starts the masters with their files in `dir`, waits until every worker's
// view is complete (or `give_up`), reads `cost` then, and stops every master by PID (each
// stops its workers). {"view_complete_ms": spread after the last start, "cost_at_convergence",
// "views_complete", "stopped_cleanly"}, or with "error" when it did not complete.
nlohmann::json run_scale_floor(int hosts, int workers, const std::string& dir,
                               clock::time_point give_up, const cost_reader& cost);

}  // namespace galaxies::bench
