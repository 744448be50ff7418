#include "registry/store_backend.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "registry/row_checks.hpp"

namespace galaxies::registry {
namespace {

bool by_id(const host_record& a, const host_record& b) {
  return a.id < b.id;
}

}  // namespace

bool view_filter::changed(const std::vector<host_record>& view) {
  std::vector<std::tuple<host_id, std::string, std::string>> keys;
  keys.reserve(view.size());
  for (const auto& row : view) keys.emplace_back(row.id, row.address, row.unix_path);
  if (last_ && *last_ == keys) return false;
  last_ = std::move(keys);
  return true;
}

void view_bound::apply(std::vector<host_record>& view, const host_id& self,
                       const std::string& where) {
  if (view.size() <= max_rows_) {
    if (over_)
      spdlog::info("registry {}: {} host(s) listed, within the limit again", where, view.size());
    over_ = false;
    return;
  }
  if (!over_) {
    spdlog::warn(
        "registry {}: {} hosts listed, more than the limit of {}; using ourselves and the "
        "first ones by id",
        where, view.size(), max_rows_);
  }
  over_ = true;
  const auto self_at =
      std::find_if(view.begin(), view.end(), [&](const host_record& r) { return r.id == self; });
  const bool self_listed = self_at != view.end();
  const bool self_beyond =
      self_listed && static_cast<std::size_t>(self_at - view.begin()) >= max_rows_;
  if (self_beyond) {
    // Ourselves in the last place kept, the order by id unchanged.
    std::rotate(view.begin() + static_cast<std::ptrdiff_t>(max_rows_) - 1, self_at, self_at + 1);
  }
  view.resize(max_rows_);
}

host_record own_row(const host_record& self, const std::string& cluster, const std::string& where) {
  host_record row = self;
  if (row.cluster != cluster) {
    if (!row.cluster.empty()) {
      spdlog::warn(
          "registry {}: own row names cluster '{}' but the registry serves '{}'; using '{}'", where,
          row.cluster, cluster, cluster);
    }
    row.cluster = cluster;
  }
  // Every reader checks rows the same way: a row of ours that fails would be invisible to all.
  if (const auto ec = check_row_fields(row)) {
    spdlog::error("registry {}: our own row will be skipped by other hosts: {}", where,
                  ec.message());
  }
  return row;
}

std::chrono::milliseconds refresh_period(const options& opts) {
  if (opts.refresh.count() > 0) return opts.refresh;
  return std::max(opts.ttl / 3, std::chrono::milliseconds(1));
}

store_backend::store_backend(const asio::any_io_executor& executor, std::string cluster,
                             std::string where)
    : executor_(executor),
      cluster_(std::move(cluster)),
      skipped_log_(where),
      where_(std::move(where)) {}

store_backend::~store_backend() {
  *alive_ = false;
}

bool store_backend::begin(const host_record& self, view_handler on_view, health_handler on_health) {
  if (state_ != state::idle) {
    spdlog::error("registry {}: start() called twice or after stop(); ignored", describe());
    return false;
  }
  state_ = state::running;
  self_ = own_row(self, cluster_, describe());
  on_view_ = std::move(on_view);
  on_health_ = std::move(on_health);
  return true;
}

bool store_backend::refuses_own_removal(const host_id& stale) const {
  if (state_ != state::running || stale != self_.id) return false;
  spdlog::warn("registry {}: asked to remove our own row as stale; ignored", describe());
  return true;
}

void store_backend::warn_if_refresh_not_below(std::chrono::milliseconds refresh,
                                              std::chrono::milliseconds ttl) const {
  if (refresh < ttl) return;
  spdlog::warn("registry {}: refresh {} ms is not below ttl {} ms; rows will flicker", describe(),
               refresh.count(), ttl.count());
}

void store_backend::report_health(std::error_code ec, const std::string& detail) {
  const bool healthy = !ec;
  if (reported_healthy_ == healthy) {
    if (ec) spdlog::debug("registry {}: {}; retrying", describe(), detail);
    return;
  }
  reported_healthy_ = healthy;
  if (!on_health_) {
    // Nobody to tell: the change is not lost for that, it goes to the log.
    if (ec) spdlog::warn("registry {}: {}", describe(), detail);
    return;
  }
  auto on_health = on_health_;  // a copy: the handler may stop or destroy this registry
  on_health(ec, detail);
}

std::vector<host_record> store_backend::view_of(std::vector<host_record> rows) {
  // We are live while running even when our row is missing (removed, expired, being repaired):
  // ourselves as registered, so a repair is no change.
  std::erase_if(rows, [&](const host_record& r) { return r.id == self_.id; });
  rows.push_back(self_);
  std::sort(rows.begin(), rows.end(), by_id);
  bound_.apply(rows, self_.id, describe());
  return rows;
}

void store_backend::report_view(const std::vector<host_record>& view) {
  if (!last_view_.changed(view) || !on_view_) return;
  auto on_view = on_view_;  // a copy: the handler may stop or destroy this registry
  on_view(view);
}

void store_backend::bound_read(std::vector<host_record>& rows) const {
  std::sort(rows.begin(), rows.end(), by_id);
  view_bound{}.apply(rows, host_id{}, describe());
}

}  // namespace galaxies::registry
