// The registry conformance suite's fixture: one value-parameterised gtest fixture over the
// backends (file, etcd, redis), the per-backend timings, and recorders for what a registry
// reports. The tests are in registry_conformance_test.cpp (what every registry does) and
// registry_conformance_faults.cpp (the store in trouble). etcd and Redis are real servers started
// by the test on free loopback ports (tests/support/store_server.hpp); a backend whose server is
// not installed, or which this build does not include yet, is skipped with the reason shown.
//
// Timing: TTLs are chosen per backend (etcd leases have whole seconds and a 2 s minimum), every
// wait is bounded and event-driven (run_until), and the bounds are generous for a loaded 2-core
// machine while the claims stay tight: "seen through the watch" means well before the next poll
// could have seen it, "removed by stop" means well before the row could have expired.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/limits.hpp"
#include "host/registry_factory.hpp"
#include "registry/registry.hpp"
#include "support/cluster.hpp"
#include "support/eventually.hpp"
#include "support/store_server.hpp"

// A named namespace: the fixture is shared by two translation units of one test program.
namespace galaxies::registry::conformance {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;
using host::make_registry;

enum class backend { file, etcd, redis };

// Per-backend timings. Only the TTLs differ; the claims are the same everywhere.
struct backend_traits {
  const char* name;
  // The shortest TTL the store honours well: etcd leases are whole seconds, at least 2.
  ms short_ttl;
  // Beyond a dead row's TTL, for its expiry to reach another registry's view: etcd revokes
  // expired leases on a ~500 ms tick; Redis expires keys within 1/hz (10 ms here).
  ms expiry_slack;
};

inline backend_traits traits(backend b) {
  switch (b) {
    case backend::file:
      return {"file", 600ms, 1500ms};
    case backend::etcd:
      return {"etcd", 2000ms, 4000ms};
    case backend::redis:
      return {"redis", 1000ms, 3000ms};
  }
  return {"?", 1s, 1s};
}

// Rows that must not expire during a test; refreshed every 5 s, so anything a registry reports
// within `notice` came from the store's watch/notification, not from the next poll.
constexpr ms long_ttl = 15s;
constexpr ms notice = 2s;
// Start-up, recovery and completion deadlines: generous, as a loaded machine must not fail a test.
constexpr ms deadline = 15s;
// The store refuses connections: an error must come at once, not after a long timeout.
constexpr ms refused_bound = 5s;
// The store accepts connections but never answers (SIGSTOP): a backend notices when its next
// request (a refresh at the latest, ttl/3 away) is not answered within the request timeout.
inline ms unanswered_bound(ms ttl) {
  return ttl / 3 + limits::registry_request_timeout + 2s;
}

inline options ttl_of(ms ttl, ms refresh = 0ms) {
  options opts;
  opts.ttl = ttl;
  opts.refresh = refresh;
  return opts;
}

// Runs handlers for a while: for claims of the form "nothing happens during this time".
inline void run_for(asio::io_context& io, ms span) {
  const auto until = clock_type::now() + span;
  test::run_until(
      io, [&] { return clock_type::now() >= until; }, span + 1s);
}

inline bool run_until(asio::io_context& io, const std::function<bool()>& done,
                      ms limit = deadline) {
  return test::run_until(io, done, limit);
}

inline std::string unique_cluster_name() {
  static int counter = 0;
  static const std::string run = host_id::random().to_string().substr(0, 8);
  return "conf-" + run + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

inline host_record make_self(const std::string& cluster, int n) {
  host_record self;
  self.id = host_id::random();
  self.cluster = cluster;
  self.address = "127.0.0.1:" + std::to_string(7000 + n);
  self.unix_path = "/tmp/gx-conf-" + self.id.to_string().substr(0, 8) + ".sock";
  self.hostname = "conformance-" + std::to_string(n);
  self.pid = static_cast<std::uint32_t>(::getpid()) + static_cast<std::uint32_t>(n);
  return self;
}

inline std::set<host_id> ids_of(const std::vector<host_record>& rows) {
  std::set<host_id> ids;
  for (const auto& r : rows) ids.insert(r.id);
  return ids;
}

// Everything one registry reported, in order.
struct recorder {
  struct health_report {
    std::error_code ec;
    std::string detail;
  };
  std::vector<std::vector<host_record>> views;
  std::vector<health_report> health;

  registry::view_handler view_handler() {
    return [this](const std::vector<host_record>& v) { views.push_back(v); };
  }
  registry::health_handler health_handler() {
    return [this](std::error_code ec, const std::string& detail) {
      health.push_back({ec, detail});
    };
  }
  std::set<host_id> last_ids() const {
    return views.empty() ? std::set<host_id>{} : ids_of(views.back());
  }
  bool has(const host_id& id) const { return last_ids().count(id) > 0; }
  bool sees_exactly(const std::set<host_id>& ids) const {
    return !views.empty() && last_ids() == ids;
  }
  bool healthy() const { return !health.empty() && !health.back().ec; }
  bool unhealthy() const { return !health.empty() && health.back().ec; }
  std::size_t errors() const {
    return static_cast<std::size_t>(
        std::count_if(health.begin(), health.end(), [](auto& h) { return bool(h.ec); }));
  }
};

// One registered host: its row, its registry and what the registry reported. Not movable: the
// handlers point at `rec`.
struct member {
  host_record self;
  recorder rec;
  std::unique_ptr<registry> reg;
};

// The result of one read().
struct read_result {
  std::optional<std::error_code> ec;
  std::vector<host_record> rows;
  bool done() const { return ec.has_value(); }
};

// A server per backend shared by the tests of this process that do not disturb it; each test
// has its own cluster name, which isolates it from the others on the same server.
inline test::store_server& shared_server(backend b) {
  static std::unique_ptr<test::store_server> servers[3];
  auto& server = servers[static_cast<int>(b)];
  if (!server || !server->running()) {
    server.reset();
    if (b == backend::etcd) server = std::make_unique<test::etcd_server>();
    if (b == backend::redis) server = std::make_unique<test::redis_server>();
  }
  return *server;
}

class RegistryConformance : public ::testing::TestWithParam<backend> {
 protected:
  void SetUp() override {
    kind_ = GetParam();
    cluster_ = unique_cluster_name();
    if (kind_ == backend::file) {
      url_ = file_url();
      return;
    }
    const bool installed =
        kind_ == backend::etcd ? test::etcd_server::available() : test::redis_server::available();
    if (!installed) {
      GTEST_SKIP() << (kind_ == backend::etcd ? "etcd" : "redis-server") << " is not on PATH: the "
                   << name() << " backend is not tested";
    }
    if (const auto why = not_built(); !why.empty()) {
      GTEST_SKIP() << "the " << name() << " backend is not in this build: " << why;
    }
  }

  const char* name() const { return traits(kind_).name; }
  ms short_ttl() const { return traits(kind_).short_ttl; }
  bool has_server() const { return kind_ != backend::file; }

  // make_registry's refusal when the backend is not compiled in yet; "" when it is.
  std::string not_built() {
    const std::string url = std::string(name()) + "://127.0.0.1:1";
    try {
      make_registry(io.get_executor(), url, "probe");
    } catch (const std::invalid_argument& e) {
      if (std::string_view(e.what()).find("not available") != std::string_view::npos)
        return e.what();
      throw;
    }
    return {};
  }

  // A fresh store for a test that disturbs it (pause, kill, restart): a private server, or for
  // the file backend a file of its own.
  std::string private_store() {
    if (kind_ == backend::etcd) own_server_ = std::make_unique<test::etcd_server>();
    if (kind_ == backend::redis) own_server_ = std::make_unique<test::redis_server>();
    return own_server_ ? own_server_->url() : file_url();
  }

  std::string file_url() {
    return "file:" + (dir_.path() / ("registry-" + std::to_string(++files_))).string();
  }

  // The store shared by this process's tests, started on first use.
  const std::string& url() {
    if (url_.empty()) url_ = shared_server(kind_).url();
    return url_;
  }

  std::unique_ptr<registry> make(options opts, const std::string& store = {}) {
    return make_registry(io.get_executor(), store.empty() ? url() : store, cluster_, opts);
  }

  // A registry for host number `n`, started.
  std::unique_ptr<member> join(int n, options opts, const std::string& url = {}) {
    auto m = std::make_unique<member>();
    m->self = make_self(cluster_, n);
    m->reg = make(opts, url);
    m->reg->start(m->self, m->rec.view_handler(), m->rec.health_handler());
    return m;
  }

  read_result read_rows(registry& r) {
    read_result result;
    r.read([&](std::error_code ec, std::vector<host_record> rows) {
      result.ec = ec;
      result.rows = std::move(rows);
    });
    EXPECT_TRUE(run_until(io, [&] { return result.done(); })) << "read() completes";
    return result;
  }

  // Reads the cluster through a registry that never registers.
  read_result read_store(const std::string& url = {}) {
    auto reader = make(ttl_of(long_ttl), url);
    return read_rows(*reader);
  }

  // Polls the store until it holds exactly `ids`: for rows written by a refresh, which reports
  // nothing when it happens.
  bool store_holds(const std::set<host_id>& ids, const std::string& store = {}) {
    const auto until = clock_type::now() + deadline;
    while (true) {
      if (ids_of(read_store(store).rows) == ids) return true;
      if (clock_type::now() >= until) return false;
      run_for(io, 100ms);
    }
  }

  backend kind_ = backend::file;
  asio::io_context io;
  test::temp_dir dir_;
  int files_ = 0;
  std::string url_;
  std::string cluster_;
  std::unique_ptr<test::store_server> own_server_;
};

}  // namespace galaxies::registry::conformance
