#include "fault_cluster.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "process/proc_stat.hpp"

#ifndef GALAXIES_CHATTER_PATH
#error "GALAXIES_CHATTER_PATH must name the built chatter program (tests/fault/CMakeLists.txt)"
#endif

namespace galaxies::test::fault {
namespace {

using clock = std::chrono::steady_clock;

std::string tail_of(const std::filesystem::path& path, std::size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

}  // namespace

bool process_gone(int pid) {
  if (pid <= 0) return true;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  const auto stat = process::read_proc_stat(pid);
  return !stat || stat->state == 'Z' || stat->state == 'X';
}

std::string summary(std::vector<double> ms) {
  if (ms.empty()) return "none";
  std::sort(ms.begin(), ms.end());
  char out[128];
  std::snprintf(out, sizeof out, "min %.1f / median %.1f / max %.1f ms (n=%zu)", ms.front(),
                ms[ms.size() / 2], ms.back(), ms.size());
  return out;
}

fault_cluster::fault_cluster(cluster_options options) : options_(std::move(options)) {
  char pattern[] = "/tmp/gxfXXXXXX";  // short: the masters' Unix sockets live here
  if (!::mkdtemp(pattern)) throw std::system_error(errno, std::system_category(), "mkdtemp");
  dir_ = pattern;
  log_dir_ = dir_ / "logs";
  std::filesystem::create_directories(log_dir_);
  logs_ = log_set(log_dir_);
  // The hosts link across addresses that are not loopback: they prove a cluster secret, as hosts
  // on several machines must.
  secret_file_ = dir_ / "cluster.secret";
  {
    std::ofstream out(secret_file_);
    out << "fault-test-secret-" << ::getpid() << "-" << std::random_device{}() << "\n";
  }
  std::filesystem::permissions(
      secret_file_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  net_ = std::make_unique<netns::test_network>(options_.hosts);
  if (options_.store != store_kind::none) start_store();
  if (options_.before_start) options_.before_start(*net_, dir_);
  for (const auto& h : options_.start_now.empty() ? options_.hosts : options_.start_now)
    start_host(h);
}

fault_cluster::~fault_cluster() {
  store_.reset();  // by PID, before its namespace goes
  net_.reset();    // stops every process, deletes the namespaces
  const bool keep =
      std::getenv("GALAXIES_TEST_KEEP_DIRS") != nullptr || ::testing::Test::HasFailure();
  if (keep) {
    std::fprintf(stderr, "[fault] kept %s\n", dir_.c_str());
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void fault_cluster::start_host(const std::string& host) {
  if (masters_.contains(host)) throw std::logic_error("host " + host + " already started");
  const auto custom = options_.listen.find(host);
  const std::string listen =
      custom != options_.listen.end() ? custom->second : net_->address(host) + ":0";
  const std::vector<std::string> argv{GALAXIES_CHATTER_PATH,
                                      "--name",
                                      host,
                                      "--workers",
                                      std::to_string(options_.workers),
                                      "--listen",
                                      listen,
                                      "--registry",
                                      registry_url(),
                                      "--cluster",
                                      "fault",
                                      "--unix",
                                      (dir_ / (host + ".sock")).string(),
                                      "--log-dir",
                                      log_dir_.string(),
                                      "--heartbeat-ms",
                                      std::to_string(options_.heartbeat.count()),
                                      "--heartbeat-misses",
                                      std::to_string(options_.heartbeat_misses),
                                      "--send-ms",
                                      std::to_string(options_.send_every.count()),
                                      "--request-ms",
                                      std::to_string(options_.request_every.count()),
                                      "--request-timeout-ms",
                                      std::to_string(options_.request_timeout.count()),
                                      "--rooms",
                                      std::to_string(options_.rooms),
                                      "--secret-file",
                                      secret_file_.string(),
                                      "--log-level",
                                      "info"};
  auto args = argv;
  if (const auto it = options_.advertise.find(host); it != options_.advertise.end()) {
    args.push_back("--advertise");
    args.push_back(it->second);
  }
  if (options_.registry_ttl.count() > 0) {
    args.push_back("--registry-ttl-ms");
    args.push_back(std::to_string(options_.registry_ttl.count()));
  }
  auto& p = net_->spawn(host, args, {}, dir_ / (host + ".master.log"));
  masters_[host] = &p;
}

void fault_cluster::restart_host(const std::string& host) {
  const auto it = masters_.find(host);
  if (it == masters_.end()) throw std::logic_error("host " + host + " was never started");
  if (it->second->running()) throw std::logic_error("host " + host + "'s master still runs");
  masters_.erase(it);
  start_host(host);
}

std::string fault_cluster::registry_url() const {
  if (!options_.registry.empty()) return options_.registry;
  if (store_) return store_->url();
  return "file:" + (dir_ / "registry").string();
}

void fault_cluster::start_store() {
  stores::store_settings settings;
  settings.network_namespace = net_->namespace_file(options_.store_host);
  settings.address = net_->address(options_.store_host);
  settings.log_path = dir_ / "store.log";
  if (options_.store == store_kind::etcd)
    store_ = std::make_unique<stores::etcd_server>(std::move(settings));
  else
    store_ =
        std::make_unique<stores::redis_server>(std::vector<std::string>{}, std::move(settings));
}

stores::store_server& fault_cluster::store() {
  if (!store_) throw std::logic_error("this cluster runs no store (cluster_options::store)");
  return *store_;
}

std::vector<node_ref> fault_cluster::live_nodes() {
  std::vector<node_ref> out;
  for (const auto& log : logs_.nodes()) {
    if (log.node == no_id || log.host == no_id) continue;  // not registered yet
    if (process_gone(log.pid)) continue;
    out.push_back({logs_.id(log.node), log.label, log.pid});
  }
  return out;
}

std::vector<node_ref> fault_cluster::live_nodes(const std::string& host) {
  auto all = live_nodes();
  std::erase_if(all, [&](const node_ref& n) { return n.host_label != host; });
  return all;
}

std::string fault_cluster::host_id(const std::string& host) {
  std::string first;
  std::string latest_live;
  double latest = -1;
  for (const auto& log : logs_.nodes()) {
    if (log.label != host || log.host == no_id) continue;
    if (first.empty()) first = logs_.id(log.host);
    if (process_gone(log.pid)) continue;
    for (const auto& r : log.records)
      if (r.what == kind::started && r.t_ms > latest) {
        latest = r.t_ms;
        latest_live = logs_.id(log.host);
      }
  }
  return latest_live.empty() ? first : latest_live;
}

bool fault_cluster::wait_logs(std::chrono::milliseconds deadline,
                              const std::function<bool()>& pred) {
  const auto until = clock::now() + deadline;
  while (true) {
    logs_.refresh();
    if (pred()) return true;
    if (clock::now() >= until) return false;
    std::this_thread::sleep_for(10ms);
  }
}

std::string fault_cluster::wait_formed(std::chrono::milliseconds deadline) {
  std::string missing;
  wait_logs(deadline, [&] {
    const auto live = live_nodes();
    std::set<std::uint32_t> all_nodes;
    for (const auto& n : live) all_nodes.insert(logs_.lookup(n.id));
    std::set<std::uint32_t> all_hosts;
    for (const auto& [h, master] : masters_) {
      const auto count = std::count_if(live.begin(), live.end(),
                                       [&](const node_ref& n) { return n.host_label == h; });
      if (static_cast<std::size_t>(count) != options_.workers) {
        missing = "host " + h + " runs " + std::to_string(count) + " registered workers";
        return false;
      }
      all_hosts.insert(logs_.lookup(host_id(h)));
    }
    for (const auto& n : live) {
      const node_log* log = logs_.find(n.id);
      auto expected = all_nodes;
      expected.erase(log->node);
      if (log->nodes_now != expected) {
        missing = logs_.name(log->node) + " knows " + std::to_string(log->nodes_now.size()) +
                  " nodes of the " + std::to_string(expected.size()) + " others";
        return false;
      }
      if (log->hosts_now != all_hosts) {
        missing = logs_.name(log->node) + " knows " + std::to_string(log->hosts_now.size()) +
                  " hosts of " + std::to_string(all_hosts.size());
        return false;
      }
    }
    missing.clear();
    return true;
  });
  return missing;
}

std::string fault_cluster::wait_traffic(std::size_t messages, std::chrono::milliseconds deadline) {
  const double since = netns::monotonic_ms();
  std::string missing;
  wait_logs(deadline, [&] {
    const auto live = live_nodes();
    for (const auto& r : live) {
      const node_log* log = logs_.find(r.id);
      std::map<std::uint32_t, std::size_t> received;
      for (auto it = log->records.rbegin(); it != log->records.rend() && it->t_ms >= since; ++it)
        if (it->what == kind::recv) ++received[it->peer];
      for (const auto& s : live) {
        if (s.id == r.id) continue;
        if (received[logs_.lookup(s.id)] < messages) {
          missing = logs_.name(log->node) + " received " +
                    std::to_string(received[logs_.lookup(s.id)]) + " messages from " +
                    logs_.name(logs_.lookup(s.id));
          return false;
        }
      }
    }
    missing.clear();
    return true;
  });
  return missing;
}

std::optional<double> fault_cluster::first(const std::string& observer, kind what,
                                           const std::string& peer, double after) {
  const node_log* log = logs_.find(observer);
  const auto p = logs_.lookup(peer);
  if (!log || p == no_id) return std::nullopt;
  for (const auto i : log->membership) {
    const auto& r = log->records[i];
    if (r.what == what && r.peer == p && r.t_ms >= after) return r.t_ms;
  }
  return std::nullopt;
}

std::vector<record> fault_cluster::all(const std::string& observer, kind what,
                                       const std::string& peer, double after) {
  std::vector<record> out;
  const node_log* log = logs_.find(observer);
  const auto p = logs_.lookup(peer);
  if (!log || p == no_id) return out;
  for (const auto i : log->membership)
    if (log->records[i].what == what && log->records[i].peer == p && log->records[i].t_ms >= after)
      out.push_back(log->records[i]);
  return out;
}

std::vector<std::string> fault_cluster::quiesce_and_check(std::chrono::milliseconds deadline) {
  std::ofstream(log_dir_ / "quiesce") << "stop\n";
  std::vector<std::string> unsettled;
  const bool settled = wait_logs(deadline, [&] {
    unsettled.clear();
    for (const auto& n : live_nodes()) {
      const node_log* log = logs_.find(n.id);
      if (!log->idle) unsettled.push_back(logs_.name(log->node) + " is not idle");
    }
    for (auto& u : undelivered(logs_)) unsettled.push_back(std::move(u));
    return unsettled.empty();
  });
  auto violations = check(logs_, {.require_drained = true, .require_same_views = true});
  if (!settled)
    for (auto& u : unsettled) violations.push_back("did not settle: " + u);
  return violations;
}

std::string fault_cluster::master_logs(std::size_t tail_bytes) {
  std::string out;
  for (const auto& [h, master] : masters_)
    out += "---- host " + h + " (" + (dir_ / (h + ".master.log")).string() + ")\n" +
           tail_of(dir_ / (h + ".master.log"), tail_bytes) + "\n";
  return out;
}

}  // namespace galaxies::test::fault
