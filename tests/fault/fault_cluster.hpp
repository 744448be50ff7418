// The fault tests' harness: a test_network of hosts, one `chatter` host (master + workers) in
// each namespace, sharing a registry (a file in a temporary directory, or a store run in the
// network), and the workers' event logs read as they grow. Everything is stopped and deleted by
// the destructor (the store first, then the network).
// Threading: the test's main thread only.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "event_log_checker.hpp"
#include "store_server/store_server.hpp"
#include "support/netns.hpp"

namespace galaxies::test::fault {

using namespace std::chrono_literals;

// A registry store the cluster runs in its test network (tools/store_server).
enum class store_kind { none, etcd, redis };

struct cluster_options {
  std::vector<std::string> hosts{"a", "b", "c"};
  // The hosts started with the cluster (empty: all); the others with start_host().
  std::vector<std::string> start_now;
  std::size_t workers = 3;  // per host
  std::chrono::milliseconds heartbeat{100};
  int heartbeat_misses = 6;
  std::chrono::milliseconds send_every{20};
  std::chrono::milliseconds request_every{50};
  std::chrono::milliseconds request_timeout{300};
  // Groups: every worker joins "all" and one of this many rooms, and publishes to its room
  // (chatter --rooms; 0: no groups).
  std::uint32_t rooms = 0;
  // Per host label: the --listen address (default: the host's address, port 0) and the
  // --advertise address written to the registry (default: the bound one). With before_start,
  // e.g. a delay_proxy in front of a fixed listen port, advertised instead of it.
  std::map<std::string, std::string> listen;
  std::map<std::string, std::string> advertise;
  // Runs once the network exists, before any host starts (e.g. to spawn proxies in it).
  std::function<void(netns::test_network&, const std::filesystem::path& dir)> before_start;
  // The registry URL every host uses; empty: a file registry in the cluster's directory, or the
  // store's.
  std::string registry;
  // A store started before any host in the namespace of `store_host` (a host that runs no
  // chatter: leave it out of start_now), listening on its test address, and used as every host's
  // registry; stopped by PID before the network goes.
  store_kind store = store_kind::none;
  std::string store_host = "s";
  // The registry rows' TTL (chatter --registry-ttl-ms); 0: the library's default.
  std::chrono::milliseconds registry_ttl{0};
};

// What a node (worker) of the cluster is, from its log.
struct node_ref {
  std::string id;
  std::string host_label;
  int pid = 0;
};

class fault_cluster {
 public:
  explicit fault_cluster(cluster_options options = {});
  ~fault_cluster();
  fault_cluster(const fault_cluster&) = delete;
  fault_cluster& operator=(const fault_cluster&) = delete;

  netns::test_network& net() { return *net_; }
  // The store of cluster_options::store; throws std::logic_error when there is none.
  stores::store_server& store();
  const cluster_options& options() const { return options_; }
  // The heartbeat detection time: interval x misses.
  std::chrono::milliseconds detection() const {
    return options_.heartbeat * options_.heartbeat_misses;
  }
  netns::process& master(const std::string& host) { return *masters_.at(host); }
  // Starts the chatter host of `host` (one not started with the cluster).
  void start_host(const std::string& host);
  // Starts the chatter host of `host` again with the same arguments (so a new host UUID on the
  // same --listen), once its previous master has exited (throws std::logic_error otherwise).
  void restart_host(const std::string& host);
  // The registry URL the hosts use.
  std::string registry_url() const;

  // The logs read so far; refresh() reads what was appended since.
  log_set& logs() { return logs_; }
  void refresh() { logs_.refresh(); }

  // Every node whose worker registered and still runs (by its pid), per host label.
  std::vector<node_ref> live_nodes();
  std::vector<node_ref> live_nodes(const std::string& host);
  // The host's id, from its workers' `started` records ("" before any): the latest incarnation
  // with a live worker when there is one (a restarted host), else the first seen.
  std::string host_id(const std::string& host);

  // Waits until every started host runs `workers` live nodes and every live node knows exactly
  // every other live node and every host (by its events). Returns "" or what is still missing.
  std::string wait_formed(std::chrono::milliseconds deadline = 30s);
  // Waits until every live node received at least `messages` messages from every other live node
  // since now: traffic flows on every pair. Returns "" or the first pair still waiting.
  std::string wait_traffic(std::size_t messages = 5, std::chrono::milliseconds deadline = 20s);
  // Polls the logs until `pred` holds; false after `deadline`.
  bool wait_logs(std::chrono::milliseconds deadline, const std::function<bool()>& pred);

  // The time (t_ms) of the first record of `what` about `peer` in `observer`'s log after `after`.
  std::optional<double> first(const std::string& observer, kind what, const std::string& peer,
                              double after = 0);
  // Every record of `what` about `peer` in `observer`'s log, at or after `after`.
  std::vector<record> all(const std::string& observer, kind what, const std::string& peer,
                          double after = 0);

  // Makes every worker stop sending, waits until each live one is idle and everything sent
  // arrived, then runs the checker with every rule. Returns the violations (and what did not
  // settle, if something did not).
  std::vector<std::string> quiesce_and_check(std::chrono::milliseconds deadline = 15s);

  // The tail of every master's stderr, for failure messages.
  std::string master_logs(std::size_t tail_bytes = 3000);
  const std::filesystem::path& dir() const { return dir_; }

 private:
  void start_store();

  cluster_options options_;
  std::filesystem::path dir_;
  std::filesystem::path log_dir_;
  std::filesystem::path secret_file_;  // every host proves it on its links
  std::unique_ptr<netns::test_network> net_;
  std::unique_ptr<stores::store_server> store_;  // in net_: stopped before it
  std::map<std::string, netns::process*> masters_;
  log_set logs_;
};

// A pid that has exited (or is a zombie nobody reaped yet).
bool process_gone(int pid);

// "min / median / max" of a list of milliseconds, for reports.
std::string summary(std::vector<double> ms);

}  // namespace galaxies::test::fault
