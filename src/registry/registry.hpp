// The narrow interface every registry backend implements (file, etcd, Redis: store_backend.hpp;
// host/registry_factory.hpp makes the one a URL names).
// Rows list hosts only and are hints: the handshake decides who is who (docs/protocol.md §3).
// Threading: a registry lives on one executor; every member and callback runs there.
#pragma once

#include <asio/any_io_executor.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

#include "base/limits.hpp"
#include "galaxies/ids.hpp"

namespace galaxies::registry {

struct host_record {
  host_id id;
  std::string cluster;
  std::string address;    // TCP "ip:port" that other masters dial
  std::string unix_path;  // the master's local socket (CLI and attached nodes)
  std::string hostname;   // the machine's name: the CLI attaches only to masters on its own machine
  std::uint32_t pid = 0;
  std::int64_t expires_ms = 0;  // wall clock, milliseconds since the epoch

  friend bool operator==(const host_record&, const host_record&) = default;
};

struct options {
  std::chrono::milliseconds ttl{5000};   // a row not refreshed for this long is dead
  std::chrono::milliseconds refresh{0};  // 0 = ttl / 3
  // One request to the store (a connect, a command) fails after this long and the store counts
  // as unreachable. The file backend has no requests to time out.
  std::chrono::milliseconds request_timeout = limits::registry_request_timeout;
};

// How a backend's refreshes of our row went (the write, keepalive or SET it repeats every refresh
// period): for metrics. Updated on the backend's thread, read from any (atomics).
class refresh_stats {
 public:
  using clock = std::chrono::steady_clock;
  void note(clock::time_point started, bool ok) noexcept {
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - started).count();
    (ok ? succeeded_ : failed_).fetch_add(1, std::memory_order_relaxed);
    total_us_.fetch_add(static_cast<std::uint64_t>(us), std::memory_order_relaxed);
    last_us_.store(static_cast<std::uint64_t>(us), std::memory_order_relaxed);
  }
  std::uint64_t succeeded() const noexcept { return succeeded_.load(std::memory_order_relaxed); }
  std::uint64_t failed() const noexcept { return failed_.load(std::memory_order_relaxed); }
  // Of every refresh, ended either way: the sum, and the last one.
  std::uint64_t total_us() const noexcept { return total_us_.load(std::memory_order_relaxed); }
  std::uint64_t last_us() const noexcept { return last_us_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> succeeded_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> total_us_{0};
  std::atomic<std::uint64_t> last_us_{0};
};

class registry {
 public:
  using view_handler = std::function<void(const std::vector<host_record>&)>;
  using read_handler = std::function<void(std::error_code, std::vector<host_record>)>;
  // The store's reachability, as seen by this host: an empty code means our row is stored and
  // refreshed; a code (with a human-readable detail) means the store cannot be reached or refused
  // us. Called once when the first registration attempt ends (either way), then each time the
  // store turns from reachable to not or back; failures in between are the same outage, retried
  // and not reported again (store_backend.hpp has the rule, for every backend).
  using health_handler = std::function<void(std::error_code, const std::string& detail)>;

  virtual ~registry() = default;

  // Registers `self` with an expiry and keeps it refreshed (re-creating the row if it vanished).
  // Calls on_view with every live row of the cluster, self included, once at start and again
  // whenever the set of live rows (ids or addresses) may have changed, including by expiry.
  // While the store is unreachable the last view stands: a backend never reports rows gone
  // because it could not read them. When the store is back, it re-registers, reads everything
  // again (events missed meanwhile are not trusted to be replayed) and reports the fresh view.
  // Neither handler runs from inside start(); both may call stop() or destroy the registry.
  virtual void start(const host_record& self, view_handler on_view, health_handler on_health) = 0;

  // Drops the row of `stale` if it still names that UUID at that address (compare-and-swap):
  // used after a handshake refused with wrong_target.
  virtual void remove_stale(const host_id& stale, std::string_view address) = 0;

  // Reads the live rows once, without registering (the CLI).
  virtual void read(read_handler done) = 0;

  // Removes our row and stops refreshing and watching; `done` runs when the row is gone (or the
  // attempt failed). Safe to call when start() was never called.
  virtual void stop(std::function<void()> done) = 0;

  // Human-readable description ("file:/path"), for logs and `galaxies status`.
  virtual std::string describe() const = 0;

  // Safe from any thread.
  virtual const refresh_stats& refreshes() const noexcept { return refreshes_; }

 protected:
  refresh_stats refreshes_;
};

}  // namespace galaxies::registry
