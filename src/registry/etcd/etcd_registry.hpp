// The etcd registry backend ("etcd://HOST:PORT[,HOST:PORT...]"), through etcd's v3 JSON gateway.
//
// Layout: one key per host, "galaxies/<cluster>/hosts/<host uuid>", whose value is the row's JSON
// without expires_ms (row_json.hpp): the key is attached to a lease, and etcd deletes it when the
// lease expires. Registration is: grant a lease (the ttl in whole seconds, at least 2), put our
// key with it, range the prefix (the first view and its revision), watch the prefix from the next
// revision, and keep the lease alive every `refresh`. Views follow the watch's events.
//
// Failures, and what each one costs:
// - the watch breaks (etcd restarted, stream cut, revision compacted, canceled): range again and
//   watch from the new revision; the view is recomputed from that range, never from missed events;
// - the lease is gone (keepalive answers no TTL, or our own key is deleted under us): a new lease
//   and a new put, then range and watch again;
// - etcd is unreachable or refuses us: health turns to an error (reported once), the last view
//   stands, and the whole registration is retried with capped backoff. After an etcd restart the
//   old lease may still exist (etcd restores leases with a fresh TTL) or not: the keepalive
//   decides whether it is reused.
//
// Threading: one executor; call every member there. No callback runs inside a member call or
// after destruction; destroying it without stop() leaves the row to expire with the lease.
#pragma once

#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "base/backoff.hpp"
#include "registry/etcd/etcd_client.hpp"
#include "registry/store_backend.hpp"

namespace galaxies::registry {

class etcd_registry final : public store_backend {
 public:
  // `cluster` is already validated.
  etcd_registry(const asio::any_io_executor& executor, std::vector<etcd::endpoint> endpoints,
                std::string cluster, const options& opts);
  ~etcd_registry() override;

  etcd_registry(const etcd_registry&) = delete;
  etcd_registry& operator=(const etcd_registry&) = delete;

  void start(const host_record& self, view_handler on_view, health_handler on_health) override;
  void remove_stale(const host_id& stale, std::string_view address) override;
  void read(read_handler done) override;
  void stop(std::function<void()> done) override;

  // The key under which a cluster's host rows live ("galaxies/<cluster>/hosts/").
  static std::string prefix_for(std::string_view cluster);

 private:
  // The registration chain; each step hands over to the next or to fail(). `epoch` ties a reply
  // to the attempt that asked for it: go_down() makes every older reply moot.
  void connect();
  void grant_lease(std::uint64_t epoch);
  void put_row(std::uint64_t epoch, bool fresh_lease);
  void resync(std::uint64_t epoch);
  void watch_from(std::uint64_t epoch, std::int64_t revision);
  void on_watch_event(const etcd::watch_reply& reply);
  void on_watch_end(std::uint64_t epoch, const std::string& detail);
  void arm_keepalive(std::uint64_t epoch);
  void send_keepalive(std::uint64_t epoch);
  void repair_row(std::uint64_t epoch);
  void lease_lost(const char* how);
  void fail(std::error_code ec, const std::string& detail);
  // Drops the watch and the timers and makes pending replies moot; keeps the rows and the lease.
  void go_down();
  bool current(std::uint64_t epoch) const { return state_ == state::running && epoch == epoch_; }

  void use_lease_ttl(std::int64_t ttl_seconds);
  // True for a valid row of this cluster filed under its own key; logs the others (rate-limited).
  bool accept(const etcd::key_value& kv, host_record& row);
  // Keeps at most limits::max_registry_hosts rows, the first by key (by id): a store holding
  // more cannot make us hold them all. Past the limit, a deleted row leaves a gap until the next
  // full read (a watch restart) instead of re-reading everything on each delete.
  void remember(const std::string& key, host_record row);
  // Reports the view of rows_; may end in a handler that stops or destroys this registry:
  // callers call it last.
  void evaluate();

  std::string prefix_;
  std::int64_t ttl_seconds_;
  std::chrono::milliseconds refresh_;
  std::chrono::milliseconds keepalive_period_;

  std::string self_key_;
  std::string self_value_;

  std::int64_t lease_ = 0;  // 0: none known
  std::uint64_t epoch_ = 0;
  etcd::client::watch_id watch_ = 0;
  std::chrono::steady_clock::time_point watch_started_;
  std::map<std::string, host_record> rows_;  // by key: the store as last read and watched

  base::backoff retry_backoff_;
  base::backoff watch_backoff_;
  asio::steady_timer keepalive_timer_;
  asio::steady_timer retry_timer_;
  asio::steady_timer resync_timer_;

  // Last: destroyed first, which silences every etcd reply still in flight.
  etcd::client client_;
};

}  // namespace galaxies::registry
