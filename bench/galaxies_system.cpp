#include "galaxies_system.hpp"

#include <unistd.h>

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <filesystem>
#include <galaxies/json.hpp>
#include <iostream>
#include <stdexcept>

#include "bench_service.hpp"
#include "gather.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr auto startup_timeout = 20s;
constexpr auto poll_interval = 10ms;
constexpr auto host_stop_grace = 5000ms;
// Beyond a test's window: the time the queues in between may take to drain.
constexpr auto run_slack = 30s;

// Outside the coroutines: g++ 12 miscompiles braced initializer lists inside them ("array used as
// initializer").
std::string run_request(const node_id& receiver, const test_spec& spec) {
  return nlohmann::json{{"spec", spec}, {"peer", receiver.to_string()}}.dump();
}

}  // namespace

galaxies_system::galaxies_system(asio::io_context& io, const std::string& dir,
                                 const std::string& log_level, int busy_poll_us)
    : io_(io), dir_(dir), cluster_("bench-" + std::to_string(::getpid())) {
  start_host("a", log_level, busy_poll_us);
  start_host("b", log_level, busy_poll_us);
}

void galaxies_system::start_host(const std::string& name, const std::string& log_level,
                                 int busy_poll_us) {
  std::vector<std::string> args{host_subcommand,
                                "--workers",
                                std::to_string(bench_workers_per_host),
                                "--cluster",
                                cluster_,
                                "--registry",
                                "file:" + dir_ + "/registry",
                                "--unix",
                                unix_path(name),
                                "--log-level",
                                log_level};
  if (busy_poll_us >= 0) {
    args.push_back("--busy-poll-us");
    args.push_back(std::to_string(busy_poll_us));
  }
  hosts_.push_back(start_this_program(std::move(args)));
}

void galaxies_system::check_hosts() const {
  for (const auto& h : hosts_)
    if (!h->running())
      throw std::runtime_error("a host exited early (pid " + std::to_string(h->pid()) + ")");
}

void galaxies_system::check_alive() const {
  check_hosts();
  if (!disconnected_.empty())
    throw std::runtime_error("the driver's node lost its master: " + disconnected_);
}

asio::awaitable<void> galaxies_system::pause(std::chrono::milliseconds time) {
  asio::steady_timer timer(io_, time);
  co_await timer.async_wait(use_tuple);
}

// The socket file appears when the master binds it, a moment before it listens: a refused
// connection is tried again. Heartbeats off: the driver's thread blocks in the baselines.
asio::awaitable<void> galaxies_system::attach_control() {
  const auto give_up = clock::now() + startup_timeout;
  for (;;) {
    control_.reset();  // its goodbye callback runs now, not over the next attempt's state
    disconnected_.clear();
    refused_ = false;
    node::attach_options options{.unix_path = unix_path("a"), .cluster = cluster_};
    options.heartbeat.interval = 0ms;
    control_ = node::attach(io_, options);
    control_->on_disconnected([this](std::error_code ec, std::string_view why) {
      refused_ = control_ && !control_->ready() && ec == std::errc::connection_refused;
      disconnected_ = ec.message() + ": " + std::string(why);
    });
    while (!control_->ready() && disconnected_.empty()) {
      check_hosts();
      if (clock::now() > give_up) throw std::runtime_error("timed out attaching to host a");
      co_await pause(poll_interval);
    }
    if (!refused_) co_return;  // ready, or a failure the next check reports
    co_await pause(poll_interval);
  }
}

// Start-up only: polls, as there is no event for "two hosts are linked and every worker is
// known" that is worth wiring here; bounded by startup_timeout.
asio::awaitable<void> galaxies_system::wait_for_nodes() {
  const auto give_up = clock::now() + startup_timeout;
  const std::size_t expected = 2 * bench_workers_per_host + 1;  // and the sink
  while (!sink_->ready() || control_->nodes().size() < expected) {
    check_alive();
    if (!sink_->disconnected().empty())
      throw std::runtime_error("the sink node lost its master: " + sink_->disconnected());
    if (clock::now() > give_up)
      throw std::runtime_error("timed out waiting for both hosts' workers");
    co_await pause(poll_interval);
  }
  const node_id sink = sink_->id();
  std::vector<node_info> senders, receivers;
  for (const auto& n : control_->nodes()) {
    if (n.id == sink) continue;
    (n.host == control_->host() ? senders : receivers).push_back(n);
    worker_pids_.insert(static_cast<pid_t>(n.pid));
  }
  if (senders.size() != bench_workers_per_host || receivers.size() != bench_workers_per_host)
    throw std::runtime_error("unexpected nodes: " + std::to_string(senders.size()) +
                             " on host a, " + std::to_string(receivers.size()) + " on host b");
  const auto by_id = [](const node_info& x, const node_info& y) { return x.id < y.id; };
  std::sort(senders.begin(), senders.end(), by_id);
  std::sort(receivers.begin(), receivers.end(), by_id);
  for (std::size_t i = 0; i < senders.size(); ++i)
    pairs_.push_back({senders[i].id, receivers[i].id});
}

asio::awaitable<void> galaxies_system::connect() {
  const auto give_up = clock::now() + startup_timeout;
  while (!std::filesystem::exists(unix_path("a")) || !std::filesystem::exists(unix_path("b"))) {
    check_hosts();
    if (clock::now() > give_up)
      throw std::runtime_error("timed out waiting for the hosts' sockets");
    co_await pause(poll_interval);
  }
  co_await attach_control();
  sink_ = std::make_unique<sink_node>(unix_path("b"), cluster_);
  co_await wait_for_nodes();
}

asio::awaitable<nlohmann::json> galaxies_system::run_remote(node_id sender, node_id receiver,
                                                            test_spec spec) {
  const std::string request = run_request(receiver, spec);
  const auto timeout = std::chrono::milliseconds(spec.window_ms) + run_slack;
  auto [ec, reply] =
      co_await control_->request(sender, cmd_run, as_bytes(request), timeout, use_tuple);
  if (ec)
    throw std::runtime_error(spec.name + " failed: " + ec.message() + ": " +
                             std::string(as_text(reply)));
  co_return parse_json(reply);
}

asio::awaitable<nlohmann::json> galaxies_system::run_delayed(std::chrono::milliseconds delay,
                                                             node_id sender, node_id receiver,
                                                             test_spec spec) {
  co_await pause(delay);
  co_return co_await run_remote(sender, receiver, std::move(spec));
}

asio::awaitable<throughput_result> galaxies_system::throughput(const test_spec& spec) {
  std::vector<asio::awaitable<nlohmann::json>> tasks;
  const auto pairs = std::min<std::size_t>(static_cast<std::size_t>(spec.pairs), pairs_.size());
  for (std::size_t i = 0; i < pairs; ++i)
    tasks.push_back(run_remote(pairs_[i].sender, pairs_[i].receiver, spec));
  std::vector<throughput_result> results;
  for (const auto& r : co_await gather(std::move(tasks)))
    results.push_back(r.get<throughput_result>());
  co_return combine(results);
}

asio::awaitable<nlohmann::json> galaxies_system::run(const test_spec& spec) {
  nlohmann::json out;
  switch (spec.kind) {
    case test_kind::throughput:
      out = figures(co_await throughput(spec));
      break;
    case test_kind::latency:
      out = figures(
          (co_await run_remote(pairs_[0].sender, pairs_[0].receiver, spec)).get<latency_result>());
      break;
    case test_kind::slow_consumer:
      out = co_await slow_consumer(spec);
      break;
    case test_kind::flood:
      throw std::logic_error("flood is a part of slow_consumer, not a test of its own");
  }
  check_alive();
  co_return out;
}

bool galaxies_system::stop() {
  sink_.reset();  // on its own thread: leaves and joins
  if (control_) {
    control_->stop();
    io_.restart();
    io_.run_for(200ms);  // lets the goodbye out
    control_.reset();
  }
  bool clean = true;
  for (auto& h : hosts_) clean = h->stop(host_stop_grace) && clean;
  for (pid_t pid : worker_pids_) {
    if (process_alive(pid)) {
      std::cerr << "galaxies bench: worker pid " << pid << " outlived its master\n";
      stop_foreign_process(pid, 1000ms);
      clean = false;
    }
  }
  return clean;
}

}  // namespace galaxies::bench
