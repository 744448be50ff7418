// The CLI's subcommands. Each returns the process exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "driver.hpp"
#include "galaxies/options.hpp"
#include "relay.hpp"
#include "scale_floor.hpp"

namespace galaxies::cli {

struct host_args {
  options opts;
  std::string events;  // "" or "json"
  int heartbeat_ms = static_cast<int>(heartbeat_options{}.interval.count());
  int heartbeat_misses = heartbeat_options{}.misses;
  int registry_ttl_ms = 5000;
  int busy_poll_us = static_cast<int>(options{}.busy_poll.count());
  int stop_grace_ms = static_cast<int>(options{}.stop_grace.count());
  bool drain = false;               // workers finish what they answer before they leave
  std::vector<std::string> limits;  // NAME=VALUE
  // restart_options, in the CLI's units; max_restarts -1: unlimited.
  bool no_respawn = false;
  int restart_backoff_ms = static_cast<int>(restart_options{}.initial_backoff.count());
  int restart_backoff_max_ms = static_cast<int>(restart_options{}.max_backoff.count());
  int restart_stable_ms = static_cast<int>(restart_options{}.stable_after.count());
  long long restart_max = static_cast<long long>(restart_options{}.max_restarts);
  int restart_window_ms = static_cast<int>(restart_options{}.crash_window.count());
};

struct client_args {
  std::string registry;
  std::string cluster = "galaxies";
  std::string host;  // a host id prefix: which local master to use
  bool json = false;
  int timeout_ms = 5000;
  bool watch = false;      // status --watch
  int interval_ms = 1000;  // status --watch: between refreshes
};

struct request_args : client_args {
  std::string node;
  std::string command;
  std::string payload;
};

// `galaxies bench` and the hidden subcommands it starts its hosts and relays with.
struct bench_args {
  bench::driver_options driver;
  options host;
  bench::relay_options relay;
  bench::scale_floor_options floor;
  std::string scale;             // --scale H,W as given
  int host_registry_ttl_ms = 0;  // bench-host --registry-ttl-ms; 0: the default
  int host_busy_poll_us = -1;    // bench-host --busy-poll-us; -1: the default
};

void add_host_command(CLI::App& app, host_args& args);
// `--worker-start exec|fork` (options::start).
void add_worker_start_option(CLI::App& cmd, worker_start& start);
void add_client_options(CLI::App& cmd, client_args& args);
void add_status_command(CLI::App& app, client_args& args);
void add_events_command(CLI::App& app, client_args& args);
void add_request_command(CLI::App& app, request_args& args);
void add_bench_command(CLI::App& app, bench_args& args);

int run_host(int argc, char** argv, host_args& args);
int run_status(const client_args& args);
int run_events(const client_args& args);
int run_status_watch(const client_args& args);
int run_request(const request_args& args);
// Any of the three bench subcommands, whichever `app` got.
int run_bench(int argc, char** argv, CLI::App& app, bench_args& args);

}  // namespace galaxies::cli
