// `galaxies bench`, and the hidden subcommands it starts itself with: `bench-host` (a host whose
// workers run the benchmark's service; its workers are started with the same arguments),
// `bench-relay` (one process of the relay baseline) and `bench-scale-floor` (one master of the
// scale floor).
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <optional>
#include <utility>

#include "bench_service.hpp"
#include "commands.hpp"
#include "driver.hpp"
#include "galaxies/run.hpp"
#include "galaxies_system.hpp"
#include "local_masters.hpp"
#include "relay.hpp"

namespace galaxies::cli {
namespace {

std::optional<std::pair<int, int>> parse_scale(const std::string& text) {
  int hosts = 0, workers = 0;
  char comma = 0, extra = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &hosts, &comma, &workers, &extra) != 3 || comma != ',')
    return std::nullopt;
  if (hosts < 2 || hosts > 256 || workers < 1 || workers > 64) return std::nullopt;
  return std::pair{hosts, workers};
}

// Each master asked for its status in turn, as an observer (no expected id: the bench knows
// its sockets, not its hosts' ids); one that does not answer within a few seconds is left out.
std::vector<nlohmann::json> all_statuses(const std::vector<std::string>& unix_paths,
                                         const std::string& cluster) {
  std::vector<nlohmann::json> out;
  for (const auto& path : unix_paths) {
    registry::host_record row;
    row.unix_path = path;
    try {
      out.push_back(query_status(row, cluster, std::chrono::milliseconds(5000)));
    } catch (const std::exception& e) {
      std::cerr << "galaxies bench: status of the master at " << path << ": " << e.what() << "\n";
    }
  }
  return out;
}

}  // namespace

void add_bench_command(CLI::App& app, bench_args& args) {
  auto& d = args.driver;
  auto* cmd = app.add_subcommand(
      "bench",
      "measure worker-to-worker messaging between two hosts on 127.0.0.1 against plain TCP, a "
      "copy-only relay over the same hops and, with --peer nats, a NATS cluster");
  cmd->add_option("--runs", d.runs, "measured runs (medians with min-max are reported)")
      ->check(CLI::Range(1, 50))
      ->capture_default_str();
  cmd->add_flag("--quick", d.quick, "one short run (a few seconds): checks that the tool works");
  cmd->add_option("--json", d.json_path, "also write the JSON there ('-': only JSON on stdout)");
  cmd->add_option("--test", d.tests, "run only this test (repeatable)")
      ->check(CLI::IsMember(bench::test_names()));
  cmd->add_option("--peer", d.peers, "also measure this system (repeatable)")
      ->check(CLI::IsMember({"nats"}));
  cmd->add_option("--time-limit", d.time_limit_s, "seconds before the benchmark gives up")
      ->check(CLI::Range(5, 7200))
      ->capture_default_str();
  cmd->add_option("--scale", args.scale,
                  "H,W: start H hosts of W workers instead, and report convergence, memory, "
                  "links, nodeLeft spread and churn")
      ->check([](const std::string& text) {
        return parse_scale(text) ? "" : "want H,W (H 2-256, W 1-64)";
      });
  cmd->add_option("--max-stretch", d.max_stretch,
                  "--scale: the hosts' heartbeat max_stretch (1: no local health awareness)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--registry-ttl-ms", d.registry_ttl_ms,
                  "--scale: the hosts' registry row TTL (their refresh is a third of it)")
      ->check(CLI::Range(1000, 600000));
  cmd->add_option("--busy-poll-us", d.busy_poll_us,
                  "the hosts' options::busy_poll in microseconds (0: sleep at once; default: the "
                  "library's)")
      ->check(CLI::Range(0, 10000));
  cmd->add_option("--worker-start", d.worker_start,
                  "--scale: how the hosts start their workers (options::start)")
      ->check(CLI::IsMember({"exec", "fork"}));
  cmd->add_option("--start-wave", d.start_wave,
                  "--scale: start hosts N at a time, each wave once the previous is registered "
                  "(default: all at once)")
      ->check(CLI::Range(0, 256));
  cmd->add_flag("--no-floor{false}", d.scale_floor,
                "--scale: skip the floor of the process layout (forked workers, plain I/O, no "
                "framing), measured first in the same run by default");
  cmd->add_option("--hold", d.hold_s, "--scale: seconds watched for churn after convergence")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  cmd->add_option("--log-level", d.log_level, "the hosts' log level")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  auto& h = args.host;
  h.workers = bench::bench_workers_per_host;
  h.log_level = "warn";
  auto* host = app.add_subcommand(bench::host_subcommand, "one host of `galaxies bench`");
  host->group("");  // hidden: `galaxies bench` starts it
  host->add_option("--workers", h.workers, "worker processes")->check(CLI::Range(1, 64));
  host->add_option("--registry", h.registry, "registry URL (file:PATH)")->required();
  host->add_option("--unix", h.unix_path, "the master's Unix socket")->required();
  host->add_option("--cluster", h.cluster, "cluster name");
  host->add_option("--log-level", h.log_level, "log level");
  host->add_option("--max-stretch", h.heartbeat.max_stretch, "heartbeat_options::max_stretch")
      ->check(CLI::Range(1, 64));
  host->add_option("--registry-ttl-ms", args.host_registry_ttl_ms, "options::registry_ttl")
      ->check(CLI::Range(1000, 600000));
  host->add_option("--busy-poll-us", args.host_busy_poll_us, "options::busy_poll")
      ->check(CLI::Range(0, 10000));
  add_worker_start_option(*host, h.start);

  auto& f = args.floor;
  auto* floor = app.add_subcommand(bench::scale_floor_subcommand,
                                   "one master of the floor of `galaxies bench --scale`");
  floor->group("");
  floor->add_option("--dir", f.dir, "port files and the driver's socket")->required();
  floor->add_option("--index", f.index, "this master's")->required();
  floor->add_option("--hosts", f.hosts, "masters in all")->required()->check(CLI::Range(1, 256));
  floor->add_option("--workers", f.workers, "per master")->required()->check(CLI::Range(1, 64));

  auto& r = args.relay;
  auto* relay = app.add_subcommand(bench::relay_subcommand, "one relay of `galaxies bench`");
  relay->group("");
  relay->add_option("--unix", r.unix_path, "where clients connect")->required();
  auto* far = relay->add_option("--port-file", r.port_file, "listen on 127.0.0.1:0, port here");
  relay->add_option("--connect-port", r.connect_port, "dial 127.0.0.1:PORT per client")
      ->check(CLI::Range(1, 65535))
      ->excludes(far);
}

int run_bench(int argc, char** argv, CLI::App& app, bench_args& args) {
  if (app.got_subcommand(bench::host_subcommand)) {
    args.host.listen = "127.0.0.1:0";
    if (args.host_registry_ttl_ms > 0)
      args.host.registry_ttl = std::chrono::milliseconds(args.host_registry_ttl_ms);
    if (args.host_busy_poll_us >= 0)
      args.host.busy_poll = std::chrono::microseconds(args.host_busy_poll_us);
    return run(argc, argv, args.host, bench::install_bench_service);
  }
  if (app.got_subcommand(bench::relay_subcommand)) return bench::run_relay(args.relay);
  if (app.got_subcommand(bench::scale_floor_subcommand))
    return bench::run_scale_floor_master(args.floor);
  if (args.driver.quick) args.driver.runs = 1;
  if (const auto scale = parse_scale(args.scale)) {
    args.driver.scale_hosts = scale->first;
    args.driver.scale_workers = scale->second;
    args.driver.statuses = all_statuses;
  }
  // The driver's own nodes log through the library too: to stderr, so that `--json -` leaves
  // nothing but the JSON on stdout.
  auto logger = spdlog::stderr_logger_mt("bench");
  logger->set_level(spdlog::level::from_str(args.driver.log_level));
  spdlog::set_default_logger(logger);
  return bench::run_driver(args.driver);
}

}  // namespace galaxies::cli
