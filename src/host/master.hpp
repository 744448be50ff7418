// A host's master: the router, the worker supervisor and the chosen registry, put together.
// Threading: lives on one io_context, run by one thread.
#pragma once

#include <unistd.h>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/log_throttle.hpp"
#include "galaxies/options.hpp"
#include "monitor/http_service.hpp"
#include "monitor/snapshot_board.hpp"
#include "process/cpu_wait.hpp"
#include "process/fork_server.hpp"
#include "process/supervisor.hpp"
#include "registry/registry.hpp"
#include "router/router.hpp"

namespace galaxies::host {

class master {
 public:
  // `worker_argv`: how to start a worker (the running program's own argv); `forks`: what forks
  // them, when opts.start is worker_start::fork and the server could start (else they are
  // exec'd).
  master(asio::io_context& io, options opts, std::vector<std::string> worker_argv,
         std::unique_ptr<process::fork_server> forks = nullptr);
  ~master();

  // Called at most once, when start-up fails after start() returned: the registry refused us or
  // could not be reached. The master has stopped everything it started; the process should exit.
  using fatal_handler = std::function<void(const std::string& why)>;

  // Binds and registers; spawns the workers once the first registration succeeded. Throws
  // std::runtime_error / std::invalid_argument with a clear message on a start-up error found at
  // once (bad address, bad registry URL, socket path too long, a runtime or socket directory that
  // other users could write: docs/security.md); reports the others to `on_fatal`.
  void start(fatal_handler on_fatal);

  // Graceful stop: the registry row goes, workers stop (and leave), peers get goodbye.
  void stop(std::function<void()> done);

  const host_id& id() const noexcept { return id_; }
  const std::string& address() const noexcept { return address_; }
  const std::string& unix_path() const noexcept { return unix_path_; }

 private:
  void bind_tcp();
  void bind_unix();
  void accept_tcp();
  void accept_unix();
  // Out of descriptors (EMFILE, ENFILE) or memory, accepting again at once would spin: `resume`
  // runs after a backoff instead, and the error is logged once per interval.
  void after_accept_error(std::error_code ec, const char* which, asio::steady_timer& pause,
                          void (master::*resume)());
  void configure_security(router::router::settings& rs);
  // Fails the start-up if the registry has not registered us by the deadline (stretched by what
  // this process waited for a core since `started`).
  void await_registration(std::chrono::steady_clock::time_point started,
                          std::optional<std::chrono::nanoseconds> waited_at_start);
  void on_registry_health(std::error_code ec, const std::string& detail);
  void start_workers();
  void fail(const std::string& why);
  // What the router's status lacks: the workers' slots, the registry's health, this process.
  void extend_status(nlohmann::json& status) const;
  void start_http();
  void publish_snapshot();

  asio::io_context& io_;
  options opts_;
  std::vector<std::string> worker_argv_;
  std::shared_ptr<process::fork_server> forks_;
  host_id id_ = host_id::random();
  std::string address_;
  std::string unix_path_;
  asio::ip::tcp::acceptor tcp_acceptor_;
  asio::local::stream_protocol::acceptor unix_acceptor_;
  std::unique_ptr<registry::registry> registry_;
  std::unique_ptr<router::router> router_;
  process::restart_policy restart_policy_;  // from opts_.restart, checked by start()
  std::unique_ptr<process::supervisor> supervisor_;
  std::unique_ptr<asio::steady_timer> registration_deadline_;
  process::threads_cpu_wait_meter registration_cpu_wait_{::getpid()};
  asio::steady_timer tcp_accept_pause_;
  asio::steady_timer unix_accept_pause_;
  std::chrono::milliseconds accept_backoff_{0};
  base::log_throttle accept_error_log_{limits::accept_error_log_interval};
  fatal_handler on_fatal_;
  bool registered_once_ = false;
  bool registry_healthy_ = false;
  std::string registry_problem_;  // the last unhealthy report's detail
  bool stopping_ = false;
  // Last: stopped (its threads joined) before anything it reads goes away.
  std::shared_ptr<monitor::snapshot_board> board_;
  std::unique_ptr<monitor::http_service> http_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace galaxies::host
