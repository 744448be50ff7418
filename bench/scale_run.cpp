#include "scale_run.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <filesystem>
#include <galaxies/json.hpp>
#include <galaxies/node.hpp>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>

#include "child_process.hpp"
#include "galaxies_system.hpp"
#include "machine_context.hpp"
#include "process/proc_tasks.hpp"
#include "registry/file_store.hpp"
#include "results.hpp"
#include "scale_floor.hpp"
#include "scale_service.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr auto poll_interval = 100ms;
constexpr auto host_stop_grace = 10000ms;
constexpr auto leave_wait = 60s;
// Kept from the time limit for the status snapshots, the kill and the stop.
constexpr auto reserve = 30s;

double ms_between(std::int64_t from_ns, std::int64_t to_ns) {
  return static_cast<double>(to_ns - from_ns) / 1e6;
}

// What the masters' counters say, summed over every master that answered.
json churn_counters(const std::vector<json>& statuses) {
  std::uint64_t killed = 0, lost = 0, adopted = 0, stretched = 0, deadlines = 0, late = 0;
  std::uint64_t handshakes_expired = 0;
  std::int64_t worst = 0;
  for (const auto& s : statuses) {
    const auto& c = s.value("counters", json::object());
    killed += c.value("silent_workers_killed", std::uint64_t{0});
    lost += c.value("silent_peers_lost", std::uint64_t{0});
    adopted += c.value("workers_adopted", std::uint64_t{0});
    // Per kind of connection (worker, host link, ...): those whose handshake ran out of time.
    const json closed = c.value("closed", json::object());
    for (const auto& reasons : closed)
      handshakes_expired += reasons.value("handshake_timeout", std::uint64_t{0});
    const auto& h = s.value("local_health", json::object());
    stretched += h.value("stretched", std::uint64_t{0});
    deadlines += h.value("deadlines_stretched", std::uint64_t{0});
    late += h.value("late_ticks", std::uint64_t{0});
    worst = std::max(worst, h.value("worst_lateness_ms", std::int64_t{0}));
  }
  return {{"masters_answering", statuses.size()},
          {"silent_workers_killed", killed},
          {"silent_peers_lost", lost},
          {"workers_adopted", adopted},
          {"stretched_silences", stretched},
          {"stretched_deadlines", deadlines},
          {"handshakes_expired", handshakes_expired},
          {"late_ticks", late},
          {"worst_lateness_ms", worst}};
}

json masters_figures(const std::vector<json>& statuses) {
  std::vector<double> rss, links;
  json each = json::array();
  for (const auto& s : statuses) {
    const int pid = s.value("pid", 0);
    std::size_t linked = 0;
    for (const auto& p : s.value("peers", json::array()))
      if (p.value("state", "") == "linked") ++linked;
    const long kib = rss_kib(pid);
    rss.push_back(static_cast<double>(kib) / 1024.0);
    links.push_back(static_cast<double>(linked));
    each.push_back({{"pid", pid}, {"rss_kib", kib}, {"links", linked}});
  }
  return {{"rss_mib", spread(rss)}, {"links", spread(links)}, {"each", each}};
}

// The children of `masters` that are none of `workers`: their fork servers
// (options::start = fork; process/fork_server.hpp).
std::vector<int> fork_servers_of(const std::vector<int>& masters, const std::vector<int>& workers) {
  const std::set<int> known(workers.begin(), workers.end());
  std::vector<int> servers;
  for (int master : masters)
    for (pid_t child : process::children_of(master).value_or(std::set<pid_t>{}))
      if (known.count(child) == 0) servers.push_back(child);
  return servers;
}

// What the processes have cost by convergence: CPU time and minor page faults per master, per
// worker and per fork server, and their sum against what the machine's cores give: the cluster
// cannot converge sooner after the first start than `cpu_s / cores`, however well it is scheduled.
json cost_figures(const std::vector<int>& masters, const std::vector<int>& workers) {
  double total_ms = 0;
  // A fork server's go-betweens (one fork and an exit per worker) are its reaped children.
  const auto figures = [&total_ms](const std::vector<int>& pids, bool reaped_children = false) {
    std::vector<double> cpu, faults;
    double sum_ms = 0;
    for (int pid : pids) {
      const auto cost = cost_of(pid, reaped_children);
      if (!cost) continue;
      cpu.push_back(cost->cpu_ms);
      faults.push_back(static_cast<double>(cost->minor_faults));
      sum_ms += cost->cpu_ms;
    }
    total_ms += sum_ms;
    return json{{"processes", cpu.size()},
                {"cpu_ms", spread(cpu)},
                {"minor_faults", spread(faults)},
                {"cpu_s", sum_ms / 1000.0}};
  };
  json out{{"masters", figures(masters)},
           {"workers", figures(workers)},
           {"fork_servers", figures(fork_servers_of(masters, workers), true)}};
  const long cores = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
  out["cpu_s"] = total_ms / 1000.0;
  out["cpu_s_per_core"] = total_ms / 1000.0 / static_cast<double>(cores);
  return out;
}

// Where the masters' main threads wait, sampled during the hold. A master blocked in the kernel
// (state D) runs no timer and sends no heartbeat whatever its share of the CPU: the file
// registry's renames did that to them under load (bench/RESULTS.md, 2026-12-04, ninth session).
class kernel_waits {
 public:
  void sample(int pid) {
    const auto where = main_thread_wait(pid);
    if (where.state == 0) return;
    ++samples_;
    if (where.state == 'D') ++blocked_[where.in_kernel.empty() ? "?" : where.in_kernel];
  }
  json to_json() const {
    std::uint64_t blocked = 0;
    json by_function = json::object();
    for (const auto& [function, n] : blocked_) {
      blocked += n;
      by_function[function] = n;
    }
    return {{"samples", samples_}, {"blocked", blocked}, {"by_function", by_function}};
  }

 private:
  std::uint64_t samples_ = 0;
  std::map<std::string, std::uint64_t> blocked_;
};

// Outside the coroutines: g++ 12 miscompiles braced initializer lists inside them.
std::string left_question(const node_id& who) {
  return json{{"node", who.to_string()}}.dump();
}

class scale_session {
 public:
  scale_session(const scale_options& o, const std::string& dir)
      : options_(o),
        dir_(dir),
        cluster_("scale-" + std::to_string(::getpid())),
        registry_("file:" + dir + "/registry"),
        expected_(static_cast<std::size_t>(o.hosts) * static_cast<std::size_t>(o.workers)) {}

  asio::io_context io{1};

  asio::awaitable<void> drive(clock::time_point deadline) {
    start_host(0);
    co_await attach_observer(deadline);
    for (int h = 1; h < options_.hosts; ++h) {
      start_host(h);
      if (options_.start_wave > 0 && h % options_.start_wave == 0)
        co_await wait_registered(h + 1, deadline);
    }
    last_start_ns_ = to_ns(clock::now());
    co_await wait_converged(deadline - reserve - std::chrono::seconds(options_.hold_s));
    if (!converged_) co_return;
    // A line to wait for: whoever wants to load the machine during the hold starts now.
    result_["cost_at_convergence"] = cost_figures(host_pids(), current_worker_pids());
    std::cerr << "galaxies bench: converged; holding " << options_.hold_s << " s" << std::endl;
    const auto at_convergence = statuses();
    result_["masters"] = masters_figures(at_convergence);
    result_["at_convergence"] = churn_counters(at_convergence);
    // Never into the reserve: a slow answer must not leave the kill without time to be seen.
    result_["at_convergence"]["node_left_seen_by_workers"] =
        co_await leaves_seen(deadline - reserve);
    const std::uint64_t leaves_before = unexpected_leaves_;
    result_["hold_blocked_in_kernel"] =
        co_await hold_sampling(std::chrono::seconds(options_.hold_s));
    const auto after_hold = statuses();
    result_["after_hold"] = churn_counters(after_hold);
    result_["after_hold"]["node_left_seen_by_workers"] = co_await leaves_seen(deadline - reserve);
    result_["unexpected_node_left_during_hold"] = unexpected_leaves_ - leaves_before;
    co_await kill_one(deadline - reserve / 2);
  }

  json result() {
    result_["hosts"] = options_.hosts;
    result_["workers_per_host"] = options_.workers;
    result_["nodes"] = expected_;
    result_["hold_s"] = options_.hold_s;
    result_["max_stretch"] = options_.max_stretch;
    result_["registry_ttl_ms"] = options_.registry_ttl_ms;
    result_["busy_poll_us"] = options_.busy_poll_us;
    result_["start_wave"] = options_.start_wave;
    result_["worker_start"] = options_.worker_start;
    result_["converged"] = converged_;
    if (!result_.contains("views_complete")) record_progress();  // never converged
    result_["unexpected_node_left"] = unexpected_leaves_;
    result_["unexpected_host_left"] = unexpected_host_leaves_;
    result_["leave_reasons"] = leave_reasons_;
    result_["final"] = churn_counters(statuses());
    return result_;
  }

  // The observer leaves, then every host is asked to stop at once (a host stopping does not
  // wait for the others), then each is waited for by PID; workers that outlived their master
  // are stopped too. False if anything needed SIGKILL.
  bool stop() {
    if (observer_) {
      observer_->stop();
      io.restart();
      io.run_for(200ms);
      observer_.reset();
    }
    for (auto& h : hosts_)
      if (h->running()) ::kill(h->pid(), SIGTERM);
    bool clean = true;
    for (auto& h : hosts_) clean = h->stop(host_stop_grace) && clean;
    for (pid_t pid : worker_pids_)
      if (process_alive(pid)) {
        std::cerr << "galaxies bench: worker pid " << pid << " outlived its master\n";
        stop_foreign_process(pid, 1000ms);
        clean = false;
      }
    return clean;
  }

 private:
  std::vector<json> statuses() const {
    std::vector<std::string> paths;
    for (int h = 0; h < options_.hosts; ++h) paths.push_back(unix_path(h));
    return options_.statuses(paths, cluster_);
  }

  std::string unix_path(int host) const { return dir_ + "/h" + std::to_string(host) + ".sock"; }

  void start_host(int host) {
    std::vector<std::string> args{
        host_subcommand, "--workers",       std::to_string(options_.workers),
        "--cluster",     cluster_,          "--registry",
        registry_,       "--unix",          unix_path(host),
        "--log-level",   options_.log_level};
    args.insert(args.end(), {"--worker-start", options_.worker_start});
    if (options_.max_stretch > 0) {
      args.push_back("--max-stretch");
      args.push_back(std::to_string(options_.max_stretch));
    }
    if (options_.registry_ttl_ms > 0) {
      args.push_back("--registry-ttl-ms");
      args.push_back(std::to_string(options_.registry_ttl_ms));
    }
    if (options_.busy_poll_us >= 0) {
      args.push_back("--busy-poll-us");
      args.push_back(std::to_string(options_.busy_poll_us));
    }
    hosts_.push_back(start_this_program(std::move(args)));
  }

  void check_hosts() {
    for (const auto& h : hosts_)
      if (!h->running())
        throw std::runtime_error("a host exited (pid " + std::to_string(h->pid()) + ")");
  }

  asio::awaitable<void> pause(clock::duration time) {
    asio::steady_timer timer(io, time);
    co_await timer.async_wait(use_tuple);
  }

  // The hold, with every master's main thread sampled each poll interval meanwhile.
  asio::awaitable<json> hold_sampling(clock::duration time) {
    kernel_waits waits;
    for (const auto until = clock::now() + time; clock::now() < until;) {
      for (const auto& h : hosts_) waits.sample(h->pid());
      co_await pause(std::min<clock::duration>(poll_interval, until - clock::now()));
    }
    co_return waits.to_json();
  }

  // Until `hosts` rows of this cluster are in the registry's directory.
  asio::awaitable<void> wait_registered(int hosts, clock::time_point give_up) {
    for (;;) {
      const auto stored = registry::file_store::load(registry_.substr(5));
      const auto ours = std::count_if(stored.rows.begin(), stored.rows.end(),
                                      [&](const auto& row) { return row.cluster == cluster_; });
      if (ours >= hosts) co_return;
      check_hosts();
      if (clock::now() > give_up) throw std::runtime_error("hosts did not register in time");
      co_await pause(poll_interval);
    }
  }

  // Attached to host 0 before the other hosts start, so that every worker's complete view
  // includes it: H x W other nodes. No heartbeats: the driver blocks in status queries.
  asio::awaitable<void> attach_observer(clock::time_point deadline) {
    for (;;) {
      check_hosts();
      if (clock::now() > deadline) throw std::runtime_error("host 0 did not start in time");
      if (!std::filesystem::exists(unix_path(0))) {
        co_await pause(poll_interval);
        continue;
      }
      node::attach_options o{.unix_path = unix_path(0), .cluster = cluster_};
      o.heartbeat.interval = 0ms;
      observer_ = node::attach(io, o);
      observer_->on_disconnected([this](std::error_code ec, std::string_view why) {
        disconnected_ = ec.message() + ": " + std::string(why);
      });
      // Before it is ready: the nodes already there are announced as it registers.
      observer_->on_node_joined([this](const node_info& n) { joined(n); });
      observer_->on_node_left([this](const node_info& n, leave_reason why, int) { left(n, why); });
      observer_->on_host_left(
          [this](const host_info&, leave_reason) { ++unexpected_host_leaves_; });
      while (!observer_->ready() && disconnected_.empty()) co_await pause(10ms);
      if (observer_->ready()) break;
      observer_.reset();  // not listening yet: again
      disconnected_.clear();
      co_await pause(poll_interval);
    }
  }

  void joined(const node_info& n) {
    workers_[n.id] = n;
    joined_ns_[n.id] = to_ns(clock::now());
    worker_pids_.insert(static_cast<pid_t>(n.pid));
    const std::string ask = json{{"others", expected_}}.dump();
    observer_->request(n.id, cmd_scale_view, as_bytes(ask),
                       std::chrono::seconds(options_.time_limit_s),
                       [this, id = n.id](std::error_code ec, bytes reply) {
                         if (ec || !workers_.contains(id)) return;
                         complete_ns_[id] = parse_json(reply).value("complete_ns", std::int64_t{0});
                       });
  }

  void left(const node_info& n, leave_reason why) {
    workers_.erase(n.id);
    complete_ns_.erase(n.id);
    joined_ns_.erase(n.id);
    if (victim_ && n.id == victim_->id) {
      observer_left_ns_ = to_ns(clock::now());
      return;
    }
    ++unexpected_leaves_;
    ++leave_reasons_[std::string(to_string(why))];
  }

  asio::awaitable<void> wait_converged(clock::time_point give_up) {
    while (workers_.size() < expected_ || complete_ns_.size() < expected_) {
      check_hosts();
      if (!disconnected_.empty())
        throw std::runtime_error("the observer lost host 0: " + disconnected_);
      if (clock::now() > give_up) co_return;
      co_await pause(poll_interval);
    }
    converged_ = true;
    record_progress();
    std::vector<double> each;
    for (const auto& [id, at] : complete_ns_) each.push_back(ms_between(last_start_ns_, at));
    result_["view_complete_ms"] = spread(each);
    // When host 0 learned of each worker: if the last join is close to the views' completion,
    // convergence waits for the slowest worker's start, not for the news to spread.
    each.clear();
    for (const auto& [id, at] : joined_ns_) each.push_back(ms_between(last_start_ns_, at));
    result_["joined_ms"] = spread(each);
  }

  // How many nodeLefts the workers have seen in all (none caused by the bench before its kill):
  // the sum over those that answered, and how many did.
  asio::awaitable<json> leaves_seen(clock::time_point give_up) {
    struct tally {
      std::uint64_t left = 0;
      std::size_t answered = 0;
      std::size_t done = 0;
    };
    auto t = std::make_shared<tally>();
    const std::size_t asked = workers_.size();
    for (const auto& [id, n] : workers_)
      observer_->request(id, cmd_scale_leaves, {}, std::chrono::milliseconds(30000),
                         [t](std::error_code ec, bytes reply) {
                           ++t->done;
                           if (ec) return;
                           ++t->answered;
                           t->left += parse_json(reply).value("left", std::uint64_t{0});
                         });
    while (t->done < asked && clock::now() < give_up) co_await pause(poll_interval);
    co_return tally_json(t->left, t->answered);
  }

  static json tally_json(std::uint64_t left, std::size_t answered) {
    return {{"sum", left}, {"workers_answering", answered}};
  }

  std::vector<int> host_pids() const {
    std::vector<int> pids;
    for (const auto& h : hosts_) pids.push_back(h->pid());
    return pids;
  }

  std::vector<int> current_worker_pids() const {
    std::vector<int> pids;
    for (const auto& [id, n] : workers_) pids.push_back(static_cast<int>(n.pid));
    return pids;
  }

  void record_progress() {
    result_["workers_seen"] = workers_.size();
    result_["views_complete"] = complete_ns_.size();
  }

  // SIGKILL to one worker of the last host; every other node says when it saw it leave.
  asio::awaitable<void> kill_one(clock::time_point give_up) {
    victim_ = std::prev(workers_.end())->second;
    std::vector<node_id> asked;
    for (const auto& [id, n] : workers_)
      if (id != victim_->id) asked.push_back(id);
    const std::int64_t killed_ns = to_ns(clock::now());
    ::kill(static_cast<pid_t>(victim_->pid), SIGKILL);
    auto answers = std::make_shared<std::vector<double>>();
    const std::string ask = left_question(victim_->id);
    for (const auto& id : asked)
      observer_->request(id, cmd_scale_left, as_bytes(ask),
                         std::chrono::duration_cast<std::chrono::milliseconds>(leave_wait),
                         [answers, killed_ns](std::error_code ec, bytes reply) {
                           if (ec) return;
                           answers->push_back(ms_between(
                               killed_ns, parse_json(reply).value("left_ns", killed_ns)));
                         });
    while ((answers->size() < asked.size() || observer_left_ns_ == 0) && clock::now() < give_up)
      co_await pause(poll_interval);
    auto all = *answers;
    if (observer_left_ns_) all.push_back(ms_between(killed_ns, observer_left_ns_));
    result_["node_left_ms"] = spread(all);
    result_["node_left_reached"] = all.size();
    result_["node_left_expected"] = asked.size() + 1;
  }

  const scale_options& options_;
  std::string dir_;
  std::string cluster_;
  std::string registry_;
  std::size_t expected_;
  std::vector<std::unique_ptr<child_process>> hosts_;
  std::unique_ptr<node> observer_;
  std::string disconnected_;
  std::int64_t last_start_ns_ = 0;
  bool converged_ = false;
  std::map<node_id, node_info> workers_;         // live, as the observer sees them
  std::map<node_id, std::int64_t> complete_ns_;  // when each live worker's view was complete
  std::map<node_id, std::int64_t> joined_ns_;    // when the observer learned of each live worker
  std::set<pid_t> worker_pids_;                  // every worker ever seen
  std::optional<node_info> victim_;
  std::int64_t observer_left_ns_ = 0;
  std::uint64_t unexpected_leaves_ = 0;
  std::uint64_t unexpected_host_leaves_ = 0;
  std::map<std::string, std::uint64_t> leave_reasons_;
  json result_ = json::object();
};

// Galaxies' figure over the floor's, when both were measured.
json ratio(const json& galaxies, const json& floor) {
  if (!galaxies.is_number() || !floor.is_number() || floor.get<double>() <= 0) return nullptr;
  return galaxies.get<double>() / floor.get<double>();
}

void compare_with_floor(json& scale) {
  const json& floor = scale["floor"];
  if (floor.contains("error") || !scale.value("converged", false)) return;
  scale["vs_floor"] = {{"view_complete_median", ratio(scale["view_complete_ms"]["median"],
                                                      floor["view_complete_ms"]["median"])},
                       {"cpu_s", ratio(scale["cost_at_convergence"]["cpu_s"],
                                       floor["cost_at_convergence"]["cpu_s"])}};
}

}  // namespace

json run_scale(const scale_options& options, const std::string& dir, json context) {
  const auto deadline = clock::now() + std::chrono::seconds(options.time_limit_s);
  json floor;
  // First, so that both find the machine as quiet; its processes are gone before the hosts start.
  if (options.floor)
    floor = run_scale_floor(options.hosts, options.workers, dir + "/floor",
                            clock::now() + std::chrono::seconds(options.time_limit_s) / 4,
                            cost_figures);
  scale_session s(options, dir);
  std::string failure;
  asio::co_spawn(s.io, s.drive(deadline), [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        failure = x.what();
      }
    }
    s.io.stop();
  });
  s.io.run();
  json scale = s.result();
  if (!failure.empty()) scale["error"] = failure;
  scale["stopped_cleanly"] = s.stop();
  if (options.floor) {
    scale["floor"] = std::move(floor);
    compare_with_floor(scale);
  }
  context["load_average_end"] = load_average();
  return {{"context", context}, {"scale", scale}};
}

void print_scale_table(std::ostream& out, const json& document) {
  const auto& s = document.at("scale");
  const auto figure = [](const json& j, const char* key) {
    return j.contains(key) && !j[key].is_null() ? j[key].dump() : std::string("-");
  };
  out << "scale " << s.value("hosts", 0) << " hosts x " << s.value("workers_per_host", 0)
      << " workers (" << s.value("nodes", 0) << " nodes)\n";
  out << "  converged:                 " << (s.value("converged", false) ? "yes" : "NO") << " ("
      << s.value("views_complete", 0) << " of " << s.value("nodes", 0) << " views complete, "
      << s.value("workers_seen", 0) << " workers seen)\n";
  out << "  view complete after last start, ms: " << figure(s, "view_complete_ms") << "\n";
  out << "  worker known to host 0 after last start, ms: " << figure(s, "joined_ms") << "\n";
  if (s.contains("floor")) {
    const auto& f = s["floor"];
    out << "  floor (forked workers, plain I/O, no framing): view complete after last start, ms: "
        << figure(f, "view_complete_ms") << "; cluster CPU, s: "
        << (f.contains("cost_at_convergence") ? figure(f["cost_at_convergence"], "cpu_s") : "-")
        << "\n";
    if (f.contains("error")) out << "  floor error: " << f["error"].get<std::string>() << "\n";
    if (s.contains("vs_floor"))
      out << "  galaxies / floor:           " << s["vs_floor"].dump() << "\n";
  }
  if (s.contains("masters")) {
    out << "  master RSS, MiB:            " << figure(s["masters"], "rss_mib") << "\n";
    out << "  master links:               " << figure(s["masters"], "links") << "\n";
  }
  out << "  nodeLeft after SIGKILL, ms: " << figure(s, "node_left_ms") << " (reached "
      << figure(s, "node_left_reached") << " of " << figure(s, "node_left_expected") << ")\n";
  out << "  unexpected nodeLeft:        " << s.value("unexpected_node_left", 0) << " (in the "
      << s.value("hold_s", 0) << " s hold: " << figure(s, "unexpected_node_left_during_hold")
      << "), hostLeft: " << s.value("unexpected_host_left", 0) << "\n";
  out << "  masters blocked in the kernel during the hold (state D, sampled): "
      << figure(s, "hold_blocked_in_kernel") << "\n";
  out << "  churn at convergence:       " << figure(s, "at_convergence") << "\n";
  out << "  churn after the hold:       " << figure(s, "after_hold") << "\n";
  out << "  masters' counters at the end: " << figure(s, "final") << "\n";
  if (s.contains("error")) out << "  error: " << s["error"].get<std::string>() << "\n";
}

}  // namespace galaxies::bench
