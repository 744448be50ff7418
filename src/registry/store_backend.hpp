// What the three store backends (file, etcd, Redis) share, so that each rule exists once: their
// own row and its cluster, the handlers start() was given, the state they are in, and what they
// report. Views: every live row of the cluster with ourselves always in it (as we registered,
// so that a repair of our row is no change), at most limits::max_registry_hosts rows, reported
// only when the ids or addresses changed. Health: one rule for every backend, below.
// Threading: like every registry, one executor; call every member there.
#pragma once

#include <asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

#include "base/limits.hpp"
#include "registry/registry.hpp"
#include "registry/skipped_rows.hpp"

namespace galaxies::registry {

// What on_view promises to report, for every backend: the set of (id, address, unix path) of the
// live rows. A change of anything else (an expiry, a pid) is not a change.
class view_filter {
 public:
  // `view` sorted by id. True, and remembered, when it differs from the last view let through.
  bool changed(const std::vector<host_record>& view);

 private:
  std::optional<std::vector<std::tuple<host_id, std::string, std::string>>> last_;
};

// At most limits::max_registry_hosts rows in a view: ourselves, then the others in id order. The
// log says so once each time the store goes over the limit.
class view_bound {
 public:
  explicit view_bound(std::size_t max_rows = limits::max_registry_hosts) : max_rows_(max_rows) {}

  // `view` sorted by id; `self` need not be in it (a one-shot read has no self).
  void apply(std::vector<host_record>& view, const host_id& self, const std::string& where);

 private:
  std::size_t max_rows_;
  bool over_ = false;
};

// `self` as a backend serving `cluster` stores it: a row naming another cluster is corrected (and
// said so in the log, as `where`'s). Rows of one registry always name its cluster.
host_record own_row(const host_record& self, const std::string& cluster, const std::string& where);

// The period of the refresh that keeps our row alive: `opts.refresh`, or ttl / 3.
std::chrono::milliseconds refresh_period(const options& opts);

class store_backend : public registry {
 public:
  ~store_backend() override;
  std::string describe() const override { return where_; }

 protected:
  enum class state { idle, running, stopping, stopped };

  // `where` is describe()'s text; `cluster` is already validated (host/registry_factory.hpp).
  store_backend(const asio::any_io_executor& executor, std::string cluster, std::string where);

  // The start() of every backend begins here. False (logged) when start() was called before or
  // after stop(): the caller returns. Otherwise the state is running, self_ is our row as this
  // registry stores it, and the handlers are kept.
  bool begin(const host_record& self, view_handler on_view, health_handler on_health);
  // remove_stale() begins here: true (logged) when asked to remove our own row, which it never
  // does; the caller returns.
  bool refuses_own_removal(const host_id& stale) const;
  // Warns at construction when rows would expire between two refreshes.
  void warn_if_refresh_not_below(std::chrono::milliseconds refresh,
                                 std::chrono::milliseconds ttl) const;

  // The one rule for health: on_health runs when the first attempt to register ends, either way,
  // then each time the store turns from reachable to not or back; `detail` says why when it is
  // not. Every failed attempt in between is a retry of the same outage: logged at debug level,
  // not reported (the host logs each change it is told). It runs the handler at once: callers
  // call it last, as the handler may stop or destroy this registry.
  void report_health(std::error_code ec, const std::string& detail);
  // Empty before the first report; then whether the last report said reachable.
  std::optional<bool> reported_healthy() const { return reported_healthy_; }

  // The view of `rows` (the store's rows, in any order, ours among them or not): ourselves as
  // registered, the others sorted by id, bounded.
  std::vector<host_record> view_of(std::vector<host_record> rows);
  // Calls on_view with `view` (from view_of) when its keys changed since the last one reported.
  // Callers call it last, as the handler may stop or destroy this registry.
  void report_view(const std::vector<host_record>& view);
  // What read() hands back: `rows` sorted by id, bounded (a one-shot read has no self).
  void bound_read(std::vector<host_record>& rows) const;

  asio::any_io_executor executor_;
  std::string cluster_;
  state state_ = state::idle;
  host_record self_;  // as stored, once begun
  skipped_rows_log skipped_log_;
  // Handlers hold a copy and check it first: false once this object is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

 private:
  std::string where_;
  view_handler on_view_;
  health_handler on_health_;
  std::optional<bool> reported_healthy_;
  view_filter last_view_;
  view_bound bound_;
};

}  // namespace galaxies::registry
