// demo_director: the scripted demo of galaxies (scripts/demo.sh runs it). It starts 3 hosts x 3
// workers of examples/game_server on 127.0.0.1, narrates what the players do, kills a worker, stops
// a host, checks that every worker saw every join and leave, and exits 0 only if all went as
// expected. With --registry etcd or redis the hosts register in a private etcd or Redis server
// that it starts on free ports of 127.0.0.1 first and stops, by its pid, last.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "director.hpp"

int main(int argc, char** argv) {
  director::director_options opts;
  // By default game_server is where the build puts it: next to this program's own directory.
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec)
    opts.game_server = (self.parent_path().parent_path() / "game_server" / "game_server").string();

  CLI::App app{"demo_director: a scripted, checked demo of a galaxies cluster on this machine"};
  app.add_option("--game-server", opts.game_server, "path of the game_server program")
      ->check(CLI::ExistingFile);
  app.add_option(
      "--work-dir", opts.work_dir,
      "directory for the registry file, sockets and logs (default: a new one in $TMPDIR)");
  auto* registry =
      app.add_option("--registry", opts.registry,
                     "where the hosts register: file (default, a file in the work directory), "
                     "etcd or redis (a private etcd or redis-server the director starts on free "
                     "ports of 127.0.0.1 and stops at the end)")
          ->check(CLI::IsMember({"file", "etcd", "redis"}));
  app.add_option("--registry-url", opts.registry_url,
                 "an existing registry to use instead: file:PATH, etcd://HOST:PORT or "
                 "redis://HOST:PORT (the cluster is then named demo-PID)")
      ->excludes(registry);
  app.add_option("--hosts", opts.hosts, "hosts to start")->check(CLI::Range(2, 26));
  app.add_option("--workers", opts.workers, "workers per host")->check(CLI::Range(2, 16));
  app.add_option("--kill-at", opts.kill_at, "seconds: when to kill a worker of host A");
  app.add_option("--stop-at", opts.stop_at, "seconds: when to stop the last host");
  app.add_option("--end-at", opts.end_at, "seconds: when to sum up and stop");
  app.add_flag("--verbose,-v", opts.verbose, "also print every event the workers print");
  app.add_flag("--keep", opts.keep, "keep the work directory (logs, events) even on success");
  CLI11_PARSE(app, argc, argv);

  try {
    director::demo demo(opts);
    return demo.run();
  } catch (const std::exception& e) {
    std::cerr << "demo_director: error: " << e.what() << "\n";
    return 1;
  }
}
