// game_server: an example application of galaxies. Started by hand it is one host: a master that
// runs --workers copies of this program, each hosting rooms and simulated players that talk to the
// players on every other worker of the cluster, on this host and on others.
//
//   game_server --name A --workers 3 --registry file:/tmp/demo/registry --cluster demo
//
// Start it again (with another --name) in a second terminal: the two hosts find each other through
// the registry file and their players start talking. demo_director scripts exactly that.
#include <CLI/CLI.hpp>
#include <iostream>

#include "galaxies/galaxies.hpp"
#include "game_settings.hpp"
#include "game_worker.hpp"

int main(int argc, char** argv) {
  galaxies::options opts;
  opts.workers = 3;
  opts.cluster = "game";
  game::game_settings game;
  int tick_ms = static_cast<int>(game.tick.count());
  int heartbeat_ms = static_cast<int>(opts.heartbeat.interval.count());
  std::string output = "text";

  // Every worker parses the same argv as its master (galaxies starts workers with it), so the
  // options below reach the workers without any other channel.
  CLI::App app{"game_server: rooms and players spread over the workers of a galaxies cluster"};
  app.add_option("--name", game.host_label,
                 "a short label for this host in the output (A, B, ...)");
  app.add_option("--workers,-w", opts.workers, "worker processes on this host")
      ->check(CLI::Range(1, 64));
  app.add_option("--registry", opts.registry,
                 "registry URL: file:PATH, etcd://HOST:PORT or redis://HOST:PORT");
  app.add_option("--cluster", opts.cluster, "cluster name: hosts of one cluster link up");
  app.add_option("--listen", opts.listen, "TCP ip:port other hosts dial (port 0: any free port)");
  app.add_option("--unix", opts.unix_path, "the master's Unix socket path");
  app.add_option("--players", game.players, "simulated players per worker")
      ->check(CLI::Range(1, 32));
  app.add_option("--rooms", game.rooms, "number of rooms in the world")->check(CLI::Range(1, 1000));
  app.add_option("--tick-ms", tick_ms, "how often players move and act")
      ->check(CLI::Range(10, 10000));
  app.add_option("--heartbeat-ms", heartbeat_ms,
                 "heartbeat interval on host links and worker channels")
      ->check(CLI::Range(0, 60000));
  app.add_option("--output", output, "text for people, json for demo_director")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", opts.log_level, "galaxies log level on stderr")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  CLI11_PARSE(app, argc, argv);

  game.json = output == "json";
  game.tick = std::chrono::milliseconds(tick_ms);
  opts.heartbeat.interval = std::chrono::milliseconds(heartbeat_ms);
  try {
    return galaxies::run(argc, argv, opts,
                         [game](galaxies::node& n) { game::game_worker::install(n, game); });
  } catch (const std::exception& e) {
    std::cerr << "game_server: error: " << e.what() << "\n";
    return 1;
  }
}
