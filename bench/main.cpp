// galaxies_bench: worker-to-worker messaging across two hosts on this machine, against plain TCP.
// Without a subcommand it is the driver; `host` is how the driver starts its two hosts (and how
// their masters start their workers: the same program, the same arguments).
#include <CLI/CLI.hpp>
#include <galaxies/run.hpp>
#include <iostream>

#include "bench_service.hpp"
#include "driver.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "galaxies_bench: throughput and round-trip latency between two workers on two hosts "
      "(127.0.0.1), as ratios to a plain loopback TCP connection"};
  galaxies::bench::driver_options driver;
  app.add_option("--runs", driver.runs, "measured runs (medians are reported)")
      ->check(CLI::Range(1, 50));
  app.add_flag("--quick", driver.quick, "one short run: checks that the benchmark works");
  app.add_option("--json", driver.json_path, "write the JSON there ('-': only JSON on stdout)");
  app.add_option("--log-level", driver.log_level, "the hosts' log level")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--test", driver.tests, "run only this test (repeatable)")
      ->check(CLI::IsMember(galaxies::bench::test_names()));
  app.add_option("--time-limit", driver.time_limit_s, "seconds before the driver gives up")
      ->check(CLI::Range(5, 3600));

  galaxies::options host;
  host.workers = 1;
  host.listen = "127.0.0.1:0";
  auto* host_cmd = app.add_subcommand("host", "one host of the benchmark (the driver starts two)");
  host_cmd->add_option("--workers", host.workers, "worker processes")->check(CLI::Range(1, 64));
  host_cmd->add_option("--registry", host.registry, "registry URL (file:PATH)")->required();
  host_cmd->add_option("--unix", host.unix_path, "the master's Unix socket")->required();
  host_cmd->add_option("--cluster", host.cluster, "cluster name");
  host_cmd->add_option("--log-level", host.log_level, "log level");

  CLI11_PARSE(app, argc, argv);
  if (driver.quick) driver.runs = 1;
  try {
    if (*host_cmd) return galaxies::run(argc, argv, host, galaxies::bench::install_bench_service);
    return galaxies::bench::run_driver(driver);
  } catch (const std::exception& e) {
    std::cerr << "galaxies_bench: error: " << e.what() << "\n";
    return 1;
  }
}
