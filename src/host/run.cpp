// galaxies::run: the process becomes the host's master, or, when started by one, its worker.
#include "galaxies/run.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>

#include "host/log_setup.hpp"
#include "host/master.hpp"
#include "process/cpu_wait.hpp"
#include "process/fork_server.hpp"
#include "process/restart_policy.hpp"
#include "process/spawn.hpp"
#include "transport/shm_channel.hpp"
#include "worker/node_core.hpp"

namespace galaxies {
namespace {

int run_worker(int channel_fd, std::unique_ptr<transport::shm_channel> rings, const options& opts,
               const worker_main& work) {
  const auto logging = host::configure_logging(opts, "worker");
  asio::io_context io(1);

  detail::node_core::settings s;
  s.role = wire::role::worker;
  s.cluster = opts.cluster;
  if (const char* host = std::getenv(process::host_id_env))
    if (auto id = host_id::parse(host)) s.expected_host = *id;
  s.max_frame_size = opts.limits.max_frame_size;
  s.max_pending_requests = opts.limits.max_pending_requests;
  s.max_queue_bytes = opts.limits.max_queue_bytes;
  s.heartbeat = opts.heartbeat;
  s.master_cpu_wait = process::cpu_wait_probe(process::master_pid());
  auto core = std::make_shared<detail::node_core>(io.get_executor(), s);
  node handle(core);

  // SIGTERM stops a worker at once. A Ctrl-C's SIGINT reaches the whole foreground group, its
  // master too, which then lets it drain (protocol.md §5.2): caught here and never waited for,
  // so it neither kills nor stops the worker (and the processes it execs get the default).
  asio::signal_set signals(io, SIGTERM);
  asio::signal_set interrupts(io, SIGINT);
  signals.async_wait([&](std::error_code ec, int) {
    if (!ec) handle.stop();
  });
  // The master going (EOF on the channel) or a refusal ends the worker; a graceful stop waits for
  // the goodbye to be written first.
  core->events().link_closed = [&] { io.stop(); };
  core->events().ended = [&](std::error_code ec) {
    signals.cancel();
    if (ec != errc::shutting_down) io.stop();
  };
  work(handle);

  transport::socket channel(io, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), channel_fd);
  core->connect(rings ? transport::stream(std::move(channel), std::move(rings))
                      : transport::stream(std::move(channel)));
  run_loop(io, opts.busy_poll);
  // The loop stops as the channel closes, before the completions its close queued have run:
  // a read parked on the rings holds the link's coroutine, which holds the link. Running them
  // lets the coroutines end and free it (nothing new starts: the node has stopped).
  io.restart();
  io.poll();
  return 0;
}

// A master holds a descriptor per node, peer and client: the soft limit (often 1024) goes up to
// the hard one, as Go does for every program. Connections stay bounded by max_connections.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
    spdlog::debug("cannot raise the descriptor limit: {}", std::strerror(errno));
}

int run_master(int argc, char** argv, const options& opts,
               std::unique_ptr<process::fork_server> forks, const std::string& why_not_forked) {
  const auto logging = host::configure_logging(opts, "master");
  if (!why_not_forked.empty())
    spdlog::warn("workers are exec'd, not forked: {} when run() was called", why_not_forked);
  raise_descriptor_limit();
  asio::io_context io(1);
  std::vector<std::string> worker_argv(argv, argv + argc);
  host::master m(io, opts, worker_argv, std::move(forks));
  // The last line for a person at a terminal; with json, stderr belongs to a log shipper, where
  // the failure is a record like any other (master::fail has logged it already).
  const auto report = [json = host::logs_json(opts)](const std::string& why, bool logged) {
    if (!json) {
      spdlog::default_logger()->flush();  // after the records that led to it
      std::cerr << "galaxies: error: " << why << "\n";
    } else if (!logged)
      spdlog::error("{}", why);
  };
  int exit_code = 0;
  try {
    m.start([&](const std::string& why) {
      report(why, true);
      exit_code = 1;
      io.stop();
    });
  } catch (const std::exception& e) {
    report(e.what(), false);
    return 1;
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int) {
    if (ec) return;
    m.stop([&] { io.stop(); });
  });
  run_loop(io, opts.busy_poll);
  return exit_code;
}

}  // namespace

bool is_worker_process() {
  return std::getenv(process::channel_fd_env) != nullptr;
}

int run(int argc, char** argv, const options& opts, worker_main work) {
  // Options that make no sense are the caller's mistake, found before anything starts.
  (void)host::logs_json(opts);
  (void)process::make_restart_policy(opts.restart);
  // Forked before the master starts anything (fork_server.hpp); the workers it forks return
  // here, their channel in their environment.
  std::unique_ptr<process::fork_server> forks;
  std::string why_not_forked;
  if (opts.start == worker_start::fork && !is_worker_process())
    forks = process::fork_server::start(why_not_forked);
  // Peers vanish: a write to a closed socket must be an error code, not a signal.
  std::signal(SIGPIPE, SIG_IGN);
  std::optional<int> channel;
  std::unique_ptr<transport::shm_channel> rings;
  try {
    channel = process::take_channel_from_environment();
    if (channel) rings = process::take_channel_rings_from_environment();
  } catch (const std::exception& e) {
    std::cerr << "galaxies: error: " << e.what() << "\n";
    return 1;
  }
  if (channel) return run_worker(*channel, std::move(rings), opts, work);
  return run_master(argc, argv, opts, std::move(forks), why_not_forked);
}

}  // namespace galaxies
