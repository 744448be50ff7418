// chatter: the fault tests' traffic application, built on galaxies::run like any application.
// Started by hand it is one host (a master and --workers workers); every worker chats with every
// other node of the cluster and logs each event as a JSON line (see chatter_worker.hpp):
//
//   chatter --name a --workers 3 --listen 10.77.0.1:0 --registry file:DIR/registry
//           --cluster fault --unix DIR/a.sock --log-dir DIR/logs --heartbeat-ms 100
//
// With --rooms N every worker also joins the groups "all" and room<slot mod N> and publishes to
// its room. Creating the file LOG_DIR/quiesce makes every worker stop sending (it logs `quiesce`,
// then `idle` once its requests ended), so that a test can wait for everything sent to arrive.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "chatter_worker.hpp"
#include "galaxies/galaxies.hpp"

int main(int argc, char** argv) {
  galaxies::options opts;
  opts.workers = 3;
  opts.cluster = "fault";
  galaxies::fault::chatter_settings chat;
  int heartbeat_ms = static_cast<int>(opts.heartbeat.interval.count());
  int heartbeat_misses = opts.heartbeat.misses;
  int registry_ttl_ms = static_cast<int>(opts.registry_ttl.count());
  int send_ms = static_cast<int>(chat.send_every.count());
  int request_ms = static_cast<int>(chat.request_every.count());
  int request_timeout_ms = static_cast<int>(chat.request_timeout.count());
  int rooms = static_cast<int>(chat.rooms);
  std::string log_dir;
  if (const char* env = std::getenv("CHATTER_LOG_DIR")) log_dir = env;

  // Workers parse the same argv as their master (galaxies starts them with it).
  CLI::App app{"chatter: traffic and an event log per node, for the fault tests"};
  app.add_option("--name", chat.label, "this host's name in the test (a, b, ...)");
  app.add_option("--workers,-w", opts.workers, "worker processes on this host")
      ->check(CLI::Range(0, 64));
  app.add_option("--registry", opts.registry, "registry URL, e.g. file:/tmp/x/registry");
  app.add_option("--cluster", opts.cluster, "cluster name");
  app.add_option("--listen", opts.listen, "TCP ip:port other hosts dial (port 0: any)");
  app.add_option("--advertise", opts.advertise, "ip:port written to the registry");
  app.add_option("--unix", opts.unix_path, "the master's Unix socket path");
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval")->check(CLI::Range(0, 60000));
  app.add_option("--heartbeat-misses", heartbeat_misses, "silent intervals before a link is lost")
      ->check(CLI::Range(1, 1000));
  app.add_option("--registry-ttl-ms", registry_ttl_ms, "registry row expiry")
      ->check(CLI::Range(200, 3600000));
  app.add_option("--log-dir", log_dir, "directory of the per-node event files (or CHATTER_LOG_DIR)")
      ->required(log_dir.empty());
  app.add_option("--send-ms", send_ms, "interval between message rounds")
      ->check(CLI::Range(1, 10000));
  app.add_option("--request-ms", request_ms, "interval between requests")
      ->check(CLI::Range(1, 10000));
  app.add_option("--request-timeout-ms", request_timeout_ms, "timeout of each request")
      ->check(CLI::Range(1, 600000));
  app.add_option("--rooms", rooms, "join groups: \"all\" and one of this many rooms (0: none)")
      ->check(CLI::Range(0, 64));
  app.add_option("--secret-file", opts.secret_file, "the cluster secret (mode 0600)");
  app.add_option("--log-level", opts.log_level, "galaxies log level on stderr")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  CLI11_PARSE(app, argc, argv);

  opts.heartbeat.interval = std::chrono::milliseconds(heartbeat_ms);
  opts.heartbeat.misses = heartbeat_misses;
  opts.registry_ttl = std::chrono::milliseconds(registry_ttl_ms);
  chat.log_dir = log_dir;
  chat.send_every = std::chrono::milliseconds(send_ms);
  chat.request_every = std::chrono::milliseconds(request_ms);
  chat.request_timeout = std::chrono::milliseconds(request_timeout_ms);
  chat.rooms = static_cast<std::uint32_t>(rooms);
  try {
    std::filesystem::create_directories(chat.log_dir);
    return galaxies::run(argc, argv, opts,
                         [chat](galaxies::node& n) { galaxies::fault::install_chatter(n, chat); });
  } catch (const std::exception& e) {
    std::cerr << "chatter: error: " << e.what() << "\n";
    return 1;
  }
}
