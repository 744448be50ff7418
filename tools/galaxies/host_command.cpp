// `galaxies host`: a host whose workers run the built-in service.
#include <map>

#include "builtin_service.hpp"
#include "commands.hpp"
#include "galaxies/run.hpp"
#include "limit_option.hpp"

namespace galaxies::cli {

void add_host_command(CLI::App& app, host_args& args) {
  auto* cmd = app.add_subcommand("host", "run a host: a master and its workers");
  cmd->add_option("--workers,-w", args.opts.workers, "worker processes")
      ->check(CLI::Range(0, 1024));
  add_worker_start_option(*cmd, args.opts.start);
  cmd->add_option("--listen", args.opts.listen, "TCP ip:port other hosts dial (port 0: any)");
  cmd->add_option("--advertise", args.opts.advertise, "ip:port written to the registry");
  cmd->add_option(
      "--registry", args.opts.registry,
      "registry URL: file:PATH, etcd://HOST:PORT[,HOST:PORT...], redis://HOST:PORT[/DB]");
  cmd->add_option("--cluster", args.opts.cluster, "cluster name");
  cmd->add_option("--unix", args.opts.unix_path, "the master's Unix socket path");
  cmd->add_option("--events", args.events, "print each worker's events on stdout")
      ->check(CLI::IsMember({"json"}));
  cmd->add_option("--heartbeat-ms", args.heartbeat_ms,
                  "heartbeat interval on host links and worker channels (0: off)")
      ->check(CLI::Range(0, 60000))
      ->capture_default_str();
  cmd->add_option("--heartbeat-misses", args.heartbeat_misses,
                  "silent intervals before a host or worker is declared gone")
      ->check(CLI::Range(2, 1000))
      ->capture_default_str();
  cmd->add_option("--registry-ttl-ms", args.registry_ttl_ms, "registry row expiry")
      ->check(CLI::Range(200, 3600000));
  cmd->add_option("--busy-poll-us", args.busy_poll_us,
                  "after a burst of work, poll up to this long for more before sleeping, while "
                  "traffic keeps coming that soon (0: sleep at once)")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  cmd->add_option("--stop-grace-ms", args.stop_grace_ms,
                  "on stop, how long workers may take to leave before they are killed")
      ->check(CLI::Range(0, 3600000))
      ->capture_default_str();
  cmd->add_flag("--drain", args.drain,
                "on stop, each worker answers the delay and hold requests it holds before it "
                "leaves (a held one keeps it until --stop-grace-ms)");
  // The secret itself never goes on a command line (other users can read /proc/PID/cmdline).
  cmd->add_option("--secret-file", args.opts.secret_file,
                  "file holding the cluster secret (mode 0600); every host link proves it "
                  "(default: $GALAXIES_SECRET_FILE)");
  cmd->add_option("--tls-cert", args.opts.tls_cert,
                  "PEM certificate of this host: TLS 1.3 on "
                  "host links (with --tls-key and --tls-ca)");
  cmd->add_option("--tls-key", args.opts.tls_key, "PEM private key of --tls-cert (mode 0600)");
  cmd->add_option("--tls-ca", args.opts.tls_ca, "PEM CA that every host's certificate chains to");
  cmd->add_option("--http", args.opts.http_listen,
                  "serve /metrics, /status.json and the web view on this ip:port (loopback "
                  "unless --insecure; port 0 picks one)");
  cmd->add_flag("--insecure", args.opts.allow_insecure,
                "without a secret, accept host links from any address (default: loopback only)");
  cmd->add_flag("--no-respawn", args.no_respawn,
                "never replace a worker that exits (its slot stays empty)");
  cmd->add_option("--restart-backoff-ms", args.restart_backoff_ms,
                  "wait before restarting an exited worker; doubles with each quick exit")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  cmd->add_option("--restart-backoff-max-ms", args.restart_backoff_max_ms,
                  "the cap of that doubling")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  cmd->add_option("--restart-stable-ms", args.restart_stable_ms,
                  "a worker that ran this long resets the backoff")
      ->check(CLI::Range(0, 86400000))
      ->capture_default_str();
  cmd->add_option("--restart-max", args.restart_max,
                  "restarts of a slot allowed within --restart-window-ms; the next exit gives the "
                  "slot up (-1: never)")
      ->check(CLI::Range(-1LL, 1000000LL))
      ->capture_default_str();
  cmd->add_option("--restart-window-ms", args.restart_window_ms,
                  "the window --restart-max counts restarts in")
      ->check(CLI::Range(1, 86400000))
      ->capture_default_str();
  cmd->add_option("--limit", args.limits, "NAME=VALUE, repeatable: " + describe_limits());
  cmd->add_option("--log-level", args.opts.log_level, "trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  cmd->add_option("--log-format", args.opts.log_format,
                  "stderr: text, or json (one object a line: time, level, role, pid, msg)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

void add_worker_start_option(CLI::App& cmd, worker_start& start) {
  cmd.add_option("--worker-start", start,
                 "how workers start: exec (the program again, from its file) or fork (copies of "
                 "this process as run() found it, from a server forked then)")
      ->transform(CLI::CheckedTransformer(std::map<std::string, worker_start>{
          {"exec", worker_start::exec}, {"fork", worker_start::fork}}))
      ->default_str("exec");
}

int run_host(int argc, char** argv, host_args& args) {
  args.opts.heartbeat.interval = std::chrono::milliseconds(args.heartbeat_ms);
  args.opts.heartbeat.misses = args.heartbeat_misses;
  args.opts.registry_ttl = std::chrono::milliseconds(args.registry_ttl_ms);
  args.opts.busy_poll = std::chrono::microseconds(args.busy_poll_us);
  restart_options& restart = args.opts.restart;
  restart.respawn = !args.no_respawn;
  restart.initial_backoff = std::chrono::milliseconds(args.restart_backoff_ms);
  restart.max_backoff = std::chrono::milliseconds(args.restart_backoff_max_ms);
  restart.stable_after = std::chrono::milliseconds(args.restart_stable_ms);
  restart.max_restarts = args.restart_max < 0 ? restart_options::unlimited
                                              : static_cast<std::size_t>(args.restart_max);
  restart.crash_window = std::chrono::milliseconds(args.restart_window_ms);
  args.opts.stop_grace = std::chrono::milliseconds(args.stop_grace_ms);
  for (const auto& assignment : args.limits) apply_limit(args.opts.limits, assignment);
  const bool json_events = args.events == "json";
  return run(argc, argv, args.opts, [json_events, drain = args.drain](node& n) {
    install_builtin_service(n, json_events, drain);
  });
}

}  // namespace galaxies::cli
