#include "host/master.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/generic/stream_protocol.hpp>
#include <asio/post.hpp>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "base/private_directory.hpp"
#include "base/text.hpp"
#include "host/process_stats.hpp"
#include "host/registry_factory.hpp"
#include "monitor/render_metrics.hpp"
#include "process/cpu_wait.hpp"
#include "process/spawn.hpp"
#include "security/secret_file.hpp"
#include "security/tls_context.hpp"
#include "transport/connector.hpp"
#include "transport/endpoint.hpp"
#include "transport/local_health.hpp"
#include "transport/local_peer.hpp"
#include "transport/socket_setup.hpp"

namespace galaxies::host {
namespace {

// How long a worker's leave waits for its reap, so that nodeLeft can name the exit status. The
// SIGCHLD normally lands within a millisecond of the channel's EOF.
constexpr auto reap_wait = std::chrono::milliseconds(50);

std::string machine_hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The default socket and registry file live there: another user who could write it could put
// their socket in place of ours. A start-up error, with what was found and how to fix it.
void require_private_runtime_directory() {
  std::string problem;
  if (base::ensure_private_directory(base::runtime_directory(), problem))
    throw std::runtime_error("unsafe runtime directory: " + problem);
}

// An explicit --unix path is the user's choice, but not one in a directory others can write.
void require_safe_socket_directory(const std::string& socket_path) {
  const auto slash = socket_path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : socket_path.substr(0, slash);
  std::string problem;
  if (base::check_chosen_directory(dir, problem))
    throw std::runtime_error("unsafe directory for --unix " + socket_path + ": " + problem);
  if (!problem.empty()) spdlog::warn("--unix {}: {}", socket_path, problem);
}

// Versions before the directory registry kept every host's row in one file beside it. Their
// masters speak protocol 1, which this one refuses, so they never appear: say why, once.
void warn_of_older_registry_file(const std::string& cluster) {
  const std::string old = base::runtime_directory() + "/" + cluster + ".registry.json";
  struct stat st {};
  if (::lstat(old.c_str(), &st) != 0) return;
  spdlog::warn(
      "{} is the registry file of an older galaxies version: its masters (protocol 1) cannot "
      "join this one, which keeps its registry in the directory {}.registry beside it; remove "
      "the file once they are stopped",
      base::printable(old), base::printable(cluster));
}

}  // namespace

master::master(asio::io_context& io, options opts, std::vector<std::string> worker_argv,
               std::unique_ptr<process::fork_server> forks)
    : io_(io),
      opts_(std::move(opts)),
      worker_argv_(std::move(worker_argv)),
      forks_(std::move(forks)),
      tcp_acceptor_(io),
      unix_acceptor_(io),
      tcp_accept_pause_(io),
      unix_accept_pause_(io) {}

master::~master() {
  *alive_ = false;
  if (http_) http_->stop();
  if (board_) board_->close();
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

void master::start(fatal_handler on_fatal) {
  on_fatal_ = std::move(on_fatal);
  if (opts_.workers > limits::max_workers_per_host)
    throw std::invalid_argument("workers " + std::to_string(opts_.workers) + " is more than " +
                                std::to_string(limits::max_workers_per_host) +
                                " (max_workers_per_host) a host may run");
  if (const auto ring = opts_.limits.channel_ring_bytes;
      ring != 0 && (ring < 4096 || !std::has_single_bit(ring)))
    throw std::invalid_argument("channel_ring_bytes " + std::to_string(ring) +
                                " is neither 0 nor a power of two of at least 4096");
  restart_policy_ = process::make_restart_policy(opts_.restart);
  if (opts_.registry.empty() || opts_.unix_path.empty()) require_private_runtime_directory();
  const std::string url =
      opts_.registry.empty() ? default_registry_url(opts_.cluster) : opts_.registry;
  if (opts_.registry.empty()) warn_of_older_registry_file(opts_.cluster);
  registry::options ropts;
  ropts.ttl = opts_.registry_ttl;
  registry_ = make_registry(io_.get_executor(), url, opts_.cluster, ropts);

  bind_tcp();
  bind_unix();

  router::router::settings rs;
  rs.self = id_;
  rs.cluster = opts_.cluster;
  rs.address = address_;
  rs.hostname = machine_hostname();
  rs.unix_path = unix_path_;
  rs.registry = registry_->describe();
  rs.limits = opts_.limits;
  rs.heartbeat = opts_.heartbeat;
  configure_security(rs);
  router::router::callbacks rc;
  rc.stale_peer = [this](const host_id& stale, const std::string& address) {
    spdlog::warn("registry row of host {} at {} is stale; removing it", stale.to_string(),
                 base::printable(address));
    registry_->remove_stale(stale, address);
  };
  rc.extend_status = [this](nlohmann::json& status) { extend_status(status); };
  rc.silent_worker = [this](pid_t pid) { return supervisor_ && supervisor_->kill(pid); };
  rc.worker_closed = [this](pid_t pid, std::function<void(int)> settle) {
    if (!supervisor_) return settle(-1);
    supervisor_->await_exit(pid, reap_wait, std::move(settle));
  };
  rc.cpu_wait = process::cpu_wait_probe;
  router_ = std::make_unique<router::router>(io_.get_executor(), rs, rc);
  if (!opts_.http_listen.empty()) start_http();

  accept_tcp();
  accept_unix();

  registry::host_record self;
  self.id = id_;
  self.cluster = opts_.cluster;
  self.address = address_;
  self.unix_path = unix_path_;
  self.hostname = rs.hostname;
  self.pid = static_cast<std::uint32_t>(::getpid());
  self.expires_ms = wall_ms() + opts_.registry_ttl.count();
  // Backends bound their own first attempt; this deadline is the promise that start-up never
  // hangs on a registry, whatever the backend does.
  registration_deadline_ = std::make_unique<asio::steady_timer>(io_);
  const auto now = std::chrono::steady_clock::now();
  await_registration(now, registration_cpu_wait_.waited(now));
  registry_->start(
      self,
      [this](const std::vector<registry::host_record>& rows) {
        std::vector<router::peer_row> peers;
        for (const auto& row : rows)
          if (row.id != id_) peers.push_back({row.id, row.address});
        router_->set_peers(peers);
      },
      [this](std::error_code ec, const std::string& detail) { on_registry_health(ec, detail); });
  spdlog::info("host {} of cluster '{}' listening on {} and {}; registry {}", id_.to_string(),
               opts_.cluster, address_, unix_path_, registry_->describe());
}

// limits::registry_startup_timeout, plus what this process's threads waited for a core meanwhile
// (its registry works on a thread of its own while the main thread sleeps): dozens of hosts and
// their workers starting at once on a few cores make each master wait seconds for one, and a
// master that gives up then only adds a restart to the load (local health, protocol.md §8.1).
// Bounded like every stretched deadline (max_stretch x the limit; 1 turns it off).
void master::await_registration(std::chrono::steady_clock::time_point started,
                                std::optional<std::chrono::nanoseconds> waited_at_start) {
  auto limit = std::chrono::steady_clock::duration(limits::registry_startup_timeout);
  if (waited_at_start)
    if (const auto waited = registration_cpu_wait_.waited(std::chrono::steady_clock::now()))
      limit = transport::forgive_cpu_wait(limit, limit, *waited - *waited_at_start,
                                          opts_.heartbeat.max_stretch);
  const auto now = std::chrono::steady_clock::now();
  if (now - started >= limit) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - started).count();
    return fail("registry " + registry_->describe() + " did not answer within " +
                std::to_string(ms) + " ms");
  }
  registration_deadline_->expires_at(started + limit);
  registration_deadline_->async_wait([this, started, waited_at_start](std::error_code ec) {
    if (ec || registered_once_ || stopping_) return;
    await_registration(started, waited_at_start);
  });
}

void master::configure_security(router::router::settings& rs) {
  std::string secret_file = opts_.secret_file;
  if (secret_file.empty())
    if (const char* env = std::getenv("GALAXIES_SECRET_FILE"); env && *env) secret_file = env;
  if (!secret_file.empty()) rs.secret = security::load_secret_file(secret_file);
  if (!opts_.tls_cert.empty() || !opts_.tls_key.empty() || !opts_.tls_ca.empty())
    rs.tls = security::make_tls_context({opts_.tls_cert, opts_.tls_key, opts_.tls_ca});
  rs.allow_insecure = opts_.allow_insecure;

  const std::string tls = rs.tls ? ", TLS 1.3 (peers verified against the CA)" : "";
  if (rs.secret) {
    spdlog::info("host links: authenticated by the cluster secret{}", tls);
  } else if (rs.allow_insecure) {
    spdlog::warn(
        "host links: --insecure: any host that reaches {} may join this cluster without proof{}",
        address_, tls);
  } else {
    spdlog::info(
        "host links: no cluster secret, so only hosts on this machine (loopback) may "
        "link{}; set --secret-file to link hosts on other machines",
        tls);
  }
}

void master::on_registry_health(std::error_code ec, const std::string& detail) {
  if (stopping_) return;
  if (!registered_once_) {
    // A store that did not answer in time is busy, not misconfigured (an etcd or Redis server
    // swamped by dozens of masters starting at once): the backend retries on its refresh, and
    // registration_deadline_ bounds the wait. Anything else is fatal now.
    if (ec == std::errc::timed_out) {
      spdlog::warn("registry {}: {}; retrying until the start-up deadline", registry_->describe(),
                   detail);
      return;
    }
    if (ec) return fail("registry " + registry_->describe() + ": " + detail);
    registered_once_ = true;
    registry_healthy_ = true;
    registration_deadline_->cancel();
    return start_workers();
  }
  if (ec && registry_healthy_) {
    // Rows are hints: existing links and their nodes stay; only membership changes wait.
    spdlog::warn("registry {} unreachable: {}; links stay up, new hosts are found once it is back",
                 registry_->describe(), detail);
  } else if (!ec && !registry_healthy_) {
    spdlog::info("registry {} reachable again; registered", registry_->describe());
  }
  registry_healthy_ = !ec;
  registry_problem_ = ec ? detail : std::string();
}

void master::start_http() {
  board_ = std::make_shared<monitor::snapshot_board>([this, alive = std::weak_ptr<bool>(alive_)] {
    // On an HTTP thread: only a post, which the loop runs when it gets to it.
    asio::post(io_, [this, alive] {
      if (const auto a = alive.lock(); a && *a) publish_snapshot();
    });
  });
  http_ = std::make_unique<monitor::http_service>(opts_.http_listen, opts_.allow_insecure, board_);
  spdlog::info("serving /metrics, /status.json and the web view on http://{}/", http_->address());
}

void master::publish_snapshot() {
  auto s = std::make_shared<monitor::snapshot>();
  const nlohmann::json status = router_->status();
  s->status_json = status.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  s->metrics = monitor::render_metrics(status);
  s->built = std::chrono::steady_clock::now();
  board_->publish(std::move(s));
}

void master::extend_status(nlohmann::json& status) const {
  status["generated_ms"] = wall_ms();
  if (http_) status["http"] = http_->address();
  // The nodes' slots come from the router (each node's own, as every host sees it).
  nlohmann::json workers = nlohmann::json::array();
  if (supervisor_) {
    using state = process::supervisor::slot_report::state;
    for (const auto& r : supervisor_->slots()) {
      const char* what = r.what == state::running      ? "running"
                         : r.what == state::restarting ? "restarting"
                         : r.what == state::given_up   ? "given_up"
                         : r.what == state::stopping   ? "stopping"
                                                       : "stopped";
      workers.push_back({{"slot", r.slot},
                         {"pid", r.pid},
                         {"state", what},
                         {"restarts", r.starts == 0 ? 0 : r.starts - 1}});
    }
  }
  status["workers"] = std::move(workers);
  nlohmann::json registry{{"url", registry_->describe()}, {"healthy", registry_healthy_}};
  if (!registry_problem_.empty()) registry["problem"] = registry_problem_;
  const auto& r = registry_->refreshes();
  registry["refreshes_ok"] = r.succeeded();
  registry["refreshes_failed"] = r.failed();
  registry["refresh_total_us"] = r.total_us();
  registry["last_refresh_us"] = r.last_us();
  status["registry_health"] = std::move(registry);
  status["process"] = process_stats();
}

void master::start_workers() {
  process::supervisor::callbacks sc;
  sc.spawned = [this](std::size_t slot, pid_t pid, int fd,
                      std::unique_ptr<transport::shm_channel> rings) {
    spdlog::debug("worker slot {} started: pid {}", slot, pid);
    // start() bounded the slots by limits::max_workers_per_host.
    router_->adopt_worker(fd, pid, static_cast<std::uint32_t>(slot), std::move(rings));
  };
  // The supervisor logs exits and give-ups itself; the router learns of exits by worker_closed.
  supervisor_ = std::make_unique<process::supervisor>(
      io_.get_executor(), worker_argv_, opts_.workers, restart_policy_, sc,
      std::vector<std::pair<std::string, std::string>>{{process::host_id_env, id_.to_string()}},
      opts_.limits.channel_ring_bytes, forks_);
  supervisor_->start();
}

void master::fail(const std::string& why) {
  spdlog::error("{}", why);
  auto on_fatal = std::move(on_fatal_);
  stop([on_fatal, why] {
    if (on_fatal) on_fatal(why);
  });
}

void master::bind_tcp() {
  auto endpoint = transport::parse_endpoint(opts_.listen);
  if (!endpoint)
    throw std::invalid_argument("--listen '" + opts_.listen +
                                "' is not a numeric ip:port (for example 127.0.0.1:0)");
  tcp_acceptor_.open(endpoint->protocol());
  transport::set_cloexec(tcp_acceptor_.native_handle());
  tcp_acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  std::error_code ec;
  tcp_acceptor_.bind(*endpoint, ec);
  if (ec) throw std::runtime_error("cannot listen on " + opts_.listen + ": " + ec.message());
  tcp_acceptor_.listen();
  const auto bound = tcp_acceptor_.local_endpoint();
  if (!opts_.advertise.empty()) {
    if (!transport::parse_endpoint(opts_.advertise))
      throw std::invalid_argument("--advertise '" + opts_.advertise + "' is not a numeric ip:port");
    address_ = opts_.advertise;
  } else if (bound.address().is_unspecified()) {
    throw std::invalid_argument("listening on " + opts_.listen +
                                " needs --advertise ip:port: the address other hosts should dial");
  } else {
    address_ = transport::format_endpoint(bound);
  }
}

void master::bind_unix() {
  std::string path = opts_.unix_path;
  if (path.empty()) {
    // Checked private (and created) by start().
    path = base::runtime_directory() + "/" + opts_.cluster + "-" + id_.to_string().substr(0, 8) +
           ".sock";
  } else {
    require_safe_socket_directory(path);
  }
  if (path.size() > limits::max_unix_path)
    throw std::invalid_argument("the Unix socket path '" + path + "' is longer than " +
                                std::to_string(limits::max_unix_path) + " bytes");
  // Bound and listening under a temporary name first, then renamed into place: a client that
  // finds the path can always connect (bind-then-listen would refuse it in between).
  const std::string staging = path + ".tmp";
  if (staging.size() > limits::max_unix_path)
    throw std::invalid_argument("the Unix socket path '" + path + "' is too long");
  ::unlink(staging.c_str());
  const asio::local::stream_protocol::endpoint endpoint(staging);
  unix_acceptor_.open(endpoint.protocol());
  transport::set_cloexec(unix_acceptor_.native_handle());
  std::error_code ec;
  unix_acceptor_.bind(endpoint, ec);
  if (ec) throw std::runtime_error("cannot bind " + staging + ": " + ec.message());
  // Called with errno at once: building the message allocates, which may change errno.
  const auto fail = [&](int error, const std::string& what) {
    ::unlink(staging.c_str());
    throw std::runtime_error(what + ": " + std::strerror(error));
  };
  // Before listen(): until then nobody can connect, whatever mode bind() gave the path.
  if (::chmod(staging.c_str(), 0600) != 0) {
    const int error = errno;
    fail(error, "cannot make " + staging + " private (chmod 0600)");
  }
  unix_acceptor_.listen();
  if (::rename(staging.c_str(), path.c_str()) != 0) {
    const int error = errno;
    fail(error, "cannot create " + path);
  }
  // Ours from now on: the destructor and stop() remove it, and nothing they did not create.
  unix_path_ = path;
}

void master::accept_tcp() {
  tcp_acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted || stopping_) return;
    if (ec) return after_accept_error(ec, "tcp", tcp_accept_pause_, &master::accept_tcp);
    accept_backoff_ = {};
    transport::set_cloexec(socket.native_handle());
    transport::tune_host_link(socket.native_handle());
    const int family = socket.local_endpoint(ec).protocol().family();
    transport::socket generic(io_, asio::generic::stream_protocol(family, IPPROTO_TCP),
                              socket.release());
    const auto from = transport::remote_of(generic);
    router_->accept_tcp(std::move(generic), from);
    accept_tcp();
  });
}

void master::after_accept_error(std::error_code ec, const char* which, asio::steady_timer& pause,
                                void (master::*resume)()) {
  const bool exhausted = ec == std::errc::too_many_files_open ||
                         ec == std::errc::too_many_files_open_in_system ||
                         ec == std::errc::no_buffer_space || ec == std::errc::not_enough_memory;
  std::uint64_t suppressed = 0;
  if (accept_error_log_.allow(std::chrono::steady_clock::now(), suppressed))
    spdlog::warn("{} accept: {}{}{}", which, ec.message(), exhausted ? "; pausing accepts" : "",
                 suppressed
                     ? fmt::format(" ({} more accept errors since the last such line)", suppressed)
                     : std::string());
  if (!exhausted) return (this->*resume)();  // one failed connection (e.g. aborted): go on
  accept_backoff_ = std::min<std::chrono::milliseconds>(
      std::max<std::chrono::milliseconds>(accept_backoff_ * 2, std::chrono::milliseconds(10)),
      limits::accept_backoff_max);
  pause.expires_after(accept_backoff_);
  pause.async_wait([this, resume](std::error_code wait_error) {
    if (!wait_error && !stopping_) (this->*resume)();
  });
}

void master::accept_unix() {
  unix_acceptor_.async_accept(
      [this](std::error_code ec, asio::local::stream_protocol::socket socket) {
        if (ec == asio::error::operation_aborted || stopping_) return;
        if (ec) return after_accept_error(ec, "unix", unix_accept_pause_, &master::accept_unix);
        accept_backoff_ = {};
        transport::set_cloexec(socket.native_handle());
        if (auto why = transport::refuse_local_peer(socket.native_handle(), ::geteuid())) {
          router_->refused_local_peer(*why);
          socket.close(ec);
        } else {
          router_->accept_unix(transport::socket(
              io_, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), socket.release()));
        }
        accept_unix();
      });
}

void master::stop(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  spdlog::info("host {} stopping", id_.to_string());
  if (http_) http_->stop();
  std::error_code ignored;
  tcp_accept_pause_.cancel();
  unix_accept_pause_.cancel();
  tcp_acceptor_.close(ignored);
  unix_acceptor_.close(ignored);
  ::unlink(unix_path_.c_str());

  // Two things to wait for: the registry row gone, and workers then links closed.
  auto remaining = std::make_shared<int>(2);
  auto finish = [remaining, done = std::move(done)] {
    if (--*remaining == 0) done();
  };
  if (registration_deadline_) registration_deadline_->cancel();
  registry_->stop(finish);
  auto close_links = [this, finish] { router_->shutdown(std::chrono::milliseconds(1000), finish); };
  if (supervisor_) {
    // Registered workers drain (protocol.md §5.2); the others get SIGTERM.
    supervisor_->stop(opts_.stop_grace, close_links,
                      [this](pid_t pid) { return router_->tell_stopping(pid, opts_.stop_grace); });
  } else {
    close_links();  // the registry never answered: no worker was started
  }
}

}  // namespace galaxies::host
