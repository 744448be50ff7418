#include "driver.hpp"

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>

#include "galaxies_system.hpp"
#include "machine_context.hpp"
#include "nats_system.hpp"
#include "relay.hpp"
#include "report.hpp"
#include "tcp_baseline.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
constexpr auto stop_grace = 3000ms;
constexpr int warmup_window_ms = 100;

std::vector<test_spec> all_specs(bool quick) {
  const int send_ms = quick ? 150 : 1000;
  const int request_ms = quick ? 100 : 500;
  const int slow_ms = quick ? 150 : 1000;
  using k = test_kind;
  // {name, kind, payload, inflight, pairs, window_ms}
  return {{"send_64", k::throughput, 64, 1, 1, send_ms},
          {"send_1k", k::throughput, 1024, 1, 1, send_ms},
          {"send_64_x4", k::throughput, 64, 1, 4, send_ms},
          {"request_64", k::latency, 64, 1, 1, request_ms},
          {"request_64_x64", k::latency, 64, 64, 1, request_ms},
          // The flood sends 1 KiB messages (queues fill sooner); the neighbours 64 B.
          {"slow_consumer", k::slow_consumer, 1024, 1, 1, slow_ms}};
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

// A private directory for the hosts' and relays' sockets, the registry file and the NATS logs,
// removed at the end.
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
  explicit session(const driver_options& o, const std::string& dir)
      : options(o),
        specs(make_specs(o)),
        galaxies(io, dir, o.log_level, o.busy_poll_us),
        relay(dir) {
    if (std::find(o.peers.begin(), o.peers.end(), "nats") != o.peers.end()) nats = start_nats(dir);
    systems = {"galaxies", "tcp", "relay"};
    if (nats) systems.push_back("nats");
  }

  driver_options options;
  std::vector<test_spec> specs;
  asio::io_context io{1};
  galaxies_system galaxies;
  relay_baseline relay;
  std::unique_ptr<nats_system> nats;
  std::vector<std::string> systems;
  std::vector<run_record> records;

  // The baselines block this thread for a test's window: the driver's nodes do not mind (the
  // control node runs without heartbeats, the sink on a thread of its own).
  asio::awaitable<nlohmann::json> measure(const std::string& system, const test_spec& spec) {
    if (system == "galaxies") co_return co_await galaxies.run(spec);
    const bool tp = spec.kind == test_kind::throughput;
    if (system == "tcp") co_return tp ? figures(tcp_throughput(spec)) : figures(tcp_latency(spec));
    if (system == "relay") {
      relay.check_running();
      co_return tp ? figures(relay.throughput(spec)) : figures(relay.latency(spec));
    }
    nats->check_running();
    co_return tp ? figures(nats->throughput(spec)) : figures(nats->latency(spec));
  }

  // slow_consumer needs a link shared by several pairs, which only galaxies has here.
  static bool measures(const std::string& system, const test_spec& spec) {
    return system == "galaxies" || spec.kind != test_kind::slow_consumer;
  }

  asio::awaitable<void> drive() {
    co_await galaxies.connect();
    if (!options.quick) {  // connections, page faults and allocator pools, everywhere
      for (auto spec : specs) {
        if (spec.kind == test_kind::slow_consumer) continue;
        spec.window_ms = std::min(spec.window_ms, warmup_window_ms);
        for (const auto& system : systems) co_await measure(system, spec);
      }
    }
    for (int run = 1; run <= options.runs; ++run) {
      auto order = systems;  // each system goes first in some runs
      std::rotate(order.begin(), order.begin() + (run - 1) % order.size(), order.end());
      for (const auto& spec : specs) {
        for (const auto& system : order) {
          if (!measures(system, spec)) continue;
          run_record record;
          record.spec = spec;
          record.run = run;
          record.system = system;
          record.figures = co_await measure(system, spec);
          std::cerr << "galaxies bench: run " << run << "/" << options.runs << " " << spec.name
                    << " " << system << " " << record.figures.dump() << "\n";
          records.push_back(std::move(record));
        }
      }
    }
  }

  bool stop_everything() {
    bool clean = galaxies.stop();
    clean = relay.stop(stop_grace) && clean;
    if (nats) clean = nats->stop(stop_grace) && clean;
    return clean;
  }
};

int write_output(const driver_options& options, const nlohmann::json& document) {
  if (options.json_path == "-") {
    std::cout << document.dump(2) << "\n";
    return 0;
  }
  print_table(std::cout, document);
  if (options.json_path.empty()) return 0;
  std::ofstream file(options.json_path);
  file << document.dump(2) << "\n";
  if (!file) {
    std::cerr << "galaxies bench: cannot write " << options.json_path << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

std::vector<std::string> test_names() {
  std::vector<std::string> names;
  for (const auto& spec : all_specs(false)) names.push_back(spec.name);
  return names;
}

static int run_scale_driver(const driver_options& options) {
  scratch_dir dir;
  scale_options scale{.hosts = options.scale_hosts,
                      .workers = options.scale_workers,
                      .hold_s = options.hold_s,
                      .max_stretch = options.max_stretch,
                      .registry_ttl_ms = options.registry_ttl_ms,
                      .busy_poll_us = options.busy_poll_us,
                      .start_wave = options.start_wave,
                      .worker_start = options.worker_start,
                      .floor = options.scale_floor,
                      .time_limit_s = options.time_limit_s,
                      .log_level = options.log_level,
                      .statuses = options.statuses};
  const auto document = run_scale(scale, dir.path(), machine_context());
  if (options.json_path == "-") {
    std::cout << document.dump(2) << "\n";
  } else {
    print_scale_table(std::cout, document);
    if (!options.json_path.empty()) std::ofstream(options.json_path) << document.dump(2) << "\n";
  }
  return document["scale"].contains("error") ? 1 : 0;
}

int run_driver(const driver_options& options) {
  if (options.scale_hosts > 0) return run_scale_driver(options);
  nlohmann::json context = machine_context();
  if (options.busy_poll_us >= 0) context["busy_poll_us"] = options.busy_poll_us;
  scratch_dir dir;
  // Every child process is started here, before the driver's own sockets and threads exist.
  session s(options, dir.path());

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
  // Ctrl-C reaches the children too (one process group); the driver still stops and cleans up.
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
    std::cerr << "galaxies bench: error: " << failure << "\n";
    return 1;
  }
  if (!clean) std::cerr << "galaxies bench: warning: a process needed SIGKILL to stop\n";

  context["load_average_end"] = load_average();
  context["runs"] = options.runs;
  context["quick"] = options.quick;
  context["systems"] = s.systems;
  return write_output(options, {{"context", context}, {"tests", summarize(s.specs, s.records)}});
}

}  // namespace galaxies::bench
