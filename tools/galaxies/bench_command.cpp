// `galaxies bench`, and the two hidden subcommands it starts itself with: `bench-host` (a host
// whose workers run the benchmark's service; its workers are started with the same arguments) and
// `bench-relay` (one process of the relay baseline).
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "bench_service.hpp"
#include "commands.hpp"
#include "driver.hpp"
#include "galaxies/run.hpp"
#include "galaxies_system.hpp"
#include "relay.hpp"

namespace galaxies::cli {

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
    return run(argc, argv, args.host, bench::install_bench_service);
  }
  if (app.got_subcommand(bench::relay_subcommand)) return bench::run_relay(args.relay);
  if (args.driver.quick) args.driver.runs = 1;
  // The driver's own nodes log through the library too: to stderr, so that `--json -` leaves
  // nothing but the JSON on stdout.
  auto logger = spdlog::stderr_logger_st("bench");
  logger->set_level(spdlog::level::from_str(args.driver.log_level));
  spdlog::set_default_logger(logger);
  return bench::run_driver(args.driver);
}

}  // namespace galaxies::cli
