#include "driver.hpp"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <galaxies/json.hpp>
#include <galaxies/node.hpp>
#include <iostream>
#include <memory>
#include <set>
#include <stdexcept>

#include "baseline.hpp"
#include "bench_service.hpp"
#include "child_process.hpp"
#include "report.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr auto startup_timeout = 20s;
constexpr auto poll_interval = 10ms;
constexpr auto host_stop_grace = 5000ms;

std::vector<test_spec> all_specs(bool quick) {
  const int tp_ms = quick ? 200 : 1000;
  const int rtt_ms = quick ? 100 : 500;
  return {{"send_64", test_kind::throughput, 64, 1, tp_ms},
          {"send_1k", test_kind::throughput, 1024, 1, tp_ms},
          {"request_64", test_kind::latency, 64, 1, rtt_ms},
          {"request_64_x32", test_kind::latency, 64, 32, rtt_ms}};
}

std::vector<test_spec> make_specs(const driver_options& options) {
  auto specs = all_specs(options.quick);
  if (options.tests.empty()) return specs;
  std::vector<test_spec> chosen;
  for (const auto& spec : specs)
    if (std::find(options.tests.begin(), options.tests.end(), spec.name) != options.tests.end())
      chosen.push_back(spec);
  return chosen;
}

// Outside the coroutines: g++ 12 miscompiles braced initializer lists inside them ("array used as
// initializer").
std::string run_request(const node_id& receiver, const test_spec& spec) {
  return nlohmann::json{{"spec", spec}, {"peer", receiver.to_string()}}.dump();
}

// A private directory for the hosts' sockets and registry file, removed at the end.
class scratch_dir {
 public:
  scratch_dir() {
    const char* tmp = std::getenv("TMPDIR");
    // Short: Unix socket paths are limited to 107 bytes.
    std::string pattern = std::string(tmp && *tmp == '/' ? tmp : "/tmp") + "/galaxies-bench-XXXXXX";
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~scratch_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct session {
  driver_options options;
  std::vector<test_spec> specs;
  std::string dir;
  std::string cluster;
  std::vector<std::unique_ptr<child_process>> hosts;
  asio::io_context io{1};
  std::unique_ptr<node> driver;
  std::string disconnected;  // why the driver's node lost its master, if it did
  bool refused = false;      // ... because the master was not listening yet
  std::set<pid_t> worker_pids;
  std::vector<run_record> records;

  std::string unix_path(const std::string& host) const { return dir + "/" + host + ".sock"; }

  void start_host(const std::string& name) {
    hosts.push_back(std::make_unique<child_process>(
        std::vector<std::string>{"host", "--workers", "1", "--cluster", cluster, "--registry",
                                 "file:" + dir + "/registry.json", "--unix", unix_path(name),
                                 "--log-level", options.log_level}));
  }

  void check_hosts() const {
    for (const auto& h : hosts)
      if (!h->running())
        throw std::runtime_error("a host exited early (pid " + std::to_string(h->pid()) + ")");
  }

  void check_alive() const {
    check_hosts();
    if (!disconnected.empty())
      throw std::runtime_error("the driver's node lost its master: " + disconnected);
  }

  // Start-up only: polls, as there is no event for "a file exists" or "two hosts are linked" that
  // is worth wiring here; bounded by startup_timeout.
  asio::awaitable<void> wait_until(std::function<bool()> done, const char* what) {
    asio::steady_timer timer(io);
    const auto give_up = clock::now() + startup_timeout;
    while (!done()) {
      check_alive();
      if (clock::now() > give_up)
        throw std::runtime_error(std::string("timed out waiting for ") + what);
      timer.expires_after(poll_interval);
      co_await timer.async_wait(use_tuple);
    }
  }

  asio::awaitable<nlohmann::json> run_remote(const node_id& sender, const node_id& receiver,
                                             const test_spec& spec) {
    const std::string request = run_request(receiver, spec);
    const auto timeout = std::chrono::milliseconds(spec.window_ms) + 90s;
    auto [ec, reply] =
        co_await driver->request(sender, cmd_run, as_bytes(request), timeout, use_tuple);
    if (ec)
      throw std::runtime_error(spec.name + " failed: " + ec.message() + ": " +
                               std::string(as_text(reply)));
    co_return parse_json(reply);
  }

  // The socket file appears when the master binds it, a moment before it listens: a refused
  // connection is tried again.
  asio::awaitable<void> attach() {
    const auto give_up = clock::now() + startup_timeout;
    asio::steady_timer timer(io);
    for (;;) {
      driver.reset();  // its goodbye callback runs now, not over the next attempt's state
      disconnected.clear();
      refused = false;
      driver = node::attach(io, {.unix_path = unix_path("a"), .cluster = cluster});
      driver->on_disconnected([this](std::error_code ec, std::string_view why) {
        refused = driver && !driver->ready() && ec == std::errc::connection_refused;
        disconnected = ec.message() + ": " + std::string(why);
      });
      while (!driver->ready() && disconnected.empty()) {
        check_hosts();
        if (clock::now() > give_up) throw std::runtime_error("timed out attaching to host a");
        timer.expires_after(poll_interval);
        co_await timer.async_wait(use_tuple);
      }
      if (!refused) co_return;  // ready, or a failure the next check reports
      timer.expires_after(poll_interval);
      co_await timer.async_wait(use_tuple);
    }
  }

  asio::awaitable<void> drive() {
    co_await wait_until([&] { return std::filesystem::exists(unix_path("a")); }, "host a's socket");
    co_await attach();
    // Both workers, on two hosts: the hosts have found each other and linked.
    co_await wait_until(
        [&] {
          if (!driver->ready()) return false;
          std::set<host_id> hosts_seen;
          for (const auto& n : driver->nodes()) hosts_seen.insert(n.host);
          return driver->nodes().size() >= 2 && hosts_seen.size() >= 2;
        },
        "both hosts' workers");
    auto workers = driver->nodes();
    std::sort(workers.begin(), workers.end(),
              [](const auto& x, const auto& y) { return x.id < y.id; });
    const node_id sender = workers[0].id;
    const node_id receiver = workers[1].id;
    for (const auto& w : workers) worker_pids.insert(static_cast<pid_t>(w.pid));
    std::cerr << "galaxies_bench: sender " << sender.to_string().substr(0, 8) << " (pid "
              << workers[0].pid << "), receiver " << receiver.to_string().substr(0, 8) << " (pid "
              << workers[1].pid << ")\n";

    // Warm-up: connections, page faults and allocator pools, on both sides.
    for (auto spec : specs) {
      spec.window_ms = std::min(spec.window_ms, 100);
      co_await run_remote(sender, receiver, spec);
      if (spec.kind == test_kind::throughput)
        baseline_throughput(spec);
      else
        baseline_latency(spec);
    }

    for (int run = 1; run <= options.runs; ++run) {
      for (const auto& spec : specs) {
        run_record record;
        record.spec = spec;
        record.run = run;
        // Blocks this thread for the test's window: the driver's node has nothing to do meanwhile.
        if (spec.kind == test_kind::throughput)
          record.baseline = baseline_throughput(spec);
        else
          record.baseline = baseline_latency(spec);
        record.galaxies = co_await run_remote(sender, receiver, spec);
        check_alive();
        std::cerr << "galaxies_bench: run " << run << "/" << options.runs << " " << spec.name
                  << ": galaxies " << record.galaxies.dump() << " baseline "
                  << record.baseline.dump() << "\n";
        records.push_back(std::move(record));
      }
    }
  }

  // Every process started, by PID: the driver's node leaves, the masters stop their workers, and
  // whatever is still there after the grace period is killed.
  bool stop_everything() {
    if (driver) {
      driver->stop();
      io.restart();
      io.run_for(200ms);  // lets the goodbye out
      driver.reset();
    }
    bool clean = true;
    for (auto& h : hosts) clean = h->stop(host_stop_grace) && clean;
    for (pid_t pid : worker_pids) {
      if (process_alive(pid)) {
        std::cerr << "galaxies_bench: worker pid " << pid << " outlived its master\n";
        stop_foreign_process(pid, 1000ms);
        clean = false;
      }
    }
    return clean;
  }
};

}  // namespace

std::vector<std::string> test_names() {
  std::vector<std::string> names;
  for (const auto& spec : all_specs(false)) names.push_back(spec.name);
  return names;
}

int run_driver(const driver_options& options) {
  scratch_dir dir;
  session s;
  s.options = options;
  s.specs = make_specs(options);
  s.dir = dir.path();
  s.cluster = "bench-" + std::to_string(::getpid());
  // Before any thread exists: the hosts are started with fork+exec.
  s.start_host("a");
  s.start_host("b");

  std::string failure;
  asio::co_spawn(s.io, s.drive(), [&](std::exception_ptr e) {
    if (e && failure.empty()) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        failure = x.what();
      }
    }
    s.io.stop();
  });
  asio::steady_timer limit(s.io, std::chrono::seconds(options.time_limit_s));
  limit.async_wait([&](std::error_code ec) {
    if (ec) return;
    failure = "time limit of " + std::to_string(options.time_limit_s) + " s reached";
    s.io.stop();
  });
  // Ctrl-C reaches the hosts too (one process group); the driver still stops and cleans up.
  asio::signal_set signals(s.io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int signal) {
    if (ec) return;
    failure = signal == SIGINT ? "interrupted" : "terminated";
    s.io.stop();
  });
  s.io.run();
  limit.cancel();
  signals.cancel();
  const bool clean = s.stop_everything();
  if (!failure.empty()) {
    std::cerr << "galaxies_bench: error: " << failure << "\n";
    return 1;
  }
  if (!clean) std::cerr << "galaxies_bench: warning: a process needed SIGKILL to stop\n";

  const nlohmann::json summary = summarize_runs(s.specs, s.records);
  const nlohmann::json document{{"runs", options.runs},
                                {"quick", options.quick},
                                {"ratio", "galaxies / baseline, median of per-run ratios"},
                                {"tests", summary}};
  if (options.json_path == "-") {
    std::cout << document.dump(2) << "\n";
    return 0;
  }
  print_table(std::cout, summary);
  if (options.json_path.empty()) {
    std::cout << "\n" << document.dump(2) << "\n";
  } else {
    std::ofstream file(options.json_path);
    file << document.dump(2) << "\n";
    if (!file) {
      std::cerr << "galaxies_bench: cannot write " << options.json_path << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace galaxies::bench
