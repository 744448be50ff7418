// System "galaxies": two hosts of this program on 127.0.0.1 (bench-host, a file registry and
// sockets in the driver's scratch directory), a control node attached to host a, and the sink
// node attached to host b for slow_consumer. Workers on host a send, workers on host b receive:
// every measured message crosses worker -> master -> TCP link -> master -> worker.
// Threading: lives on the driver's io_context (its thread), except the sink (see sink_node).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <galaxies/node.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "results.hpp"
#include "sink_node.hpp"

namespace galaxies::bench {

// The hidden CLI subcommand that runs one host of the benchmark (and, with the same arguments,
// its workers).
inline constexpr const char* host_subcommand = "bench-host";

// Workers per host: enough for send_64_x4 and for slow_consumer's flooder and two neighbours.
inline constexpr int bench_workers_per_host = 4;

class galaxies_system {
 public:
  // Starts the two host processes (their start-up continues in the background).
  // `busy_poll_us`: the hosts' options::busy_poll; negative: the library's default.
  galaxies_system(asio::io_context& io, const std::string& dir, const std::string& log_level,
                  int busy_poll_us);

  // Attaches the control node and the sink, and waits until both hosts and all their workers
  // are seen (bounded; throws on time-out or when a host exits).
  asio::awaitable<void> connect();

  // One run of one test; the figures as the JSON document names them.
  asio::awaitable<nlohmann::json> run(const test_spec& spec);

  // Throws if a host exited or the control node lost its master.
  void check_alive() const;

  // Every process started, by PID: the nodes leave, the masters stop their workers, whatever is
  // still there after the grace period is killed. False if anything needed SIGKILL.
  bool stop();

 private:
  struct pair {
    node_id sender;
    node_id receiver;
  };

  std::string unix_path(const std::string& host) const { return dir_ + "/" + host + ".sock"; }
  void start_host(const std::string& name, const std::string& log_level, int busy_poll_us);
  void check_hosts() const;
  asio::awaitable<void> pause(std::chrono::milliseconds time);
  asio::awaitable<void> attach_control();
  asio::awaitable<void> wait_for_nodes();
  asio::awaitable<nlohmann::json> run_remote(node_id sender, node_id receiver, test_spec spec);
  asio::awaitable<nlohmann::json> run_delayed(std::chrono::milliseconds delay, node_id sender,
                                              node_id receiver, test_spec spec);
  asio::awaitable<throughput_result> throughput(const test_spec& spec);
  asio::awaitable<nlohmann::json> slow_consumer(const test_spec& spec);
  asio::awaitable<void> replace_lost_sink();
  asio::awaitable<nlohmann::json> flood_then_resume(node_id flooder, test_spec flood);
  asio::awaitable<nlohmann::json> sample_peak_rss(std::chrono::milliseconds duration);
  nlohmann::json rss_now() const;

  asio::io_context& io_;
  std::string dir_;
  std::string cluster_;
  std::vector<std::unique_ptr<child_process>> hosts_;  // a, b
  std::unique_ptr<node> control_;
  std::string disconnected_;  // why the control node lost its master, if it did
  bool refused_ = false;      // ... because the master was not listening yet
  std::unique_ptr<sink_node> sink_;
  std::vector<pair> pairs_;  // sender on host a, receiver on host b; sorted by node id
  std::set<pid_t> worker_pids_;
};

}  // namespace galaxies::bench
