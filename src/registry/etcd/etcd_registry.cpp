#include "registry/etcd/etcd_registry.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio/post.hpp>
#include <utility>

#include "base/limits.hpp"
#include "base/text.hpp"
#include "registry/backends.hpp"
#include "registry/row_json.hpp"

namespace galaxies::registry {
namespace {

using namespace std::chrono_literals;

// etcd grants whole seconds, and a 1 s lease can lapse between two keepalives on a busy machine.
constexpr std::int64_t min_ttl_seconds = 2;
// A watch that lived this long was healthy: the next break retries at once.
constexpr auto healthy_watch = 5s;

std::int64_t ttl_seconds_for(std::chrono::milliseconds ttl) {
  return std::max<std::int64_t>(min_ttl_seconds, (ttl.count() + 999) / 1000);
}

}  // namespace

std::string etcd_registry::prefix_for(std::string_view cluster) {
  return "galaxies/" + std::string(cluster) + "/hosts/";
}

etcd_registry::etcd_registry(const asio::any_io_executor& executor,
                             std::vector<etcd::endpoint> endpoints, std::string cluster,
                             const options& opts)
    : store_backend(executor, std::move(cluster), etcd::to_url(endpoints)),
      prefix_(prefix_for(cluster_)),
      ttl_seconds_(ttl_seconds_for(opts.ttl)),
      refresh_(opts.refresh.count() > 0 ? opts.refresh
                                        : std::chrono::milliseconds(ttl_seconds_ * 1000 / 3)),
      keepalive_period_(refresh_),
      // Capped low: a registry that is back should be used again within a second or two.
      retry_backoff_(100ms, 1500ms),
      watch_backoff_(50ms, 1500ms),
      keepalive_timer_(executor),
      retry_timer_(executor),
      resync_timer_(executor),
      client_(executor, std::move(endpoints), opts.request_timeout) {
  if (ttl_seconds_ * 1000 != opts.ttl.count()) {
    spdlog::info("registry {}: ttl {} ms rounded to an etcd lease of {} s", describe(),
                 opts.ttl.count(), ttl_seconds_);
  }
  warn_if_refresh_not_below(refresh_, std::chrono::seconds(ttl_seconds_));
}

etcd_registry::~etcd_registry() {
  *alive_ = false;
  // client_ goes first and cancels every request silently; the timers' handlers see alive_.
}

void etcd_registry::start(const host_record& self, view_handler on_view, health_handler on_health) {
  if (!begin(self, std::move(on_view), std::move(on_health))) return;
  self_key_ = prefix_ + self_.id.to_string();
  self_value_ = row_to_text(self_, expiry_field::absent);
  connect();  // only sends requests: every handler runs later, from the executor
}

void etcd_registry::connect() {
  go_down();
  const auto epoch = epoch_;
  if (lease_ == 0) return grant_lease(epoch);
  // After a failure the lease may have survived (etcd restores leases when it restarts): keep it
  // if it is alive, so that our row never disappears for the others.
  client_.lease_keepalive(lease_, [this, epoch](std::error_code ec, const std::string& detail,
                                                etcd::keepalive_reply r) {
    if (!current(epoch)) return;
    if (ec) return fail(ec, detail);
    if (r.ttl <= 0) {
      spdlog::info("registry {}: lease {:x} expired meanwhile; registering again", describe(),
                   lease_);
      lease_ = 0;
      return grant_lease(epoch);
    }
    use_lease_ttl(r.ttl);
    put_row(epoch, false);
  });
}

void etcd_registry::grant_lease(std::uint64_t epoch) {
  client_.lease_grant(ttl_seconds_, [this, epoch](std::error_code ec, const std::string& detail,
                                                  etcd::lease_grant_reply r) {
    if (!current(epoch)) return;
    if (ec) return fail(ec, detail);
    lease_ = r.id;
    use_lease_ttl(r.ttl);
    put_row(epoch, true);
  });
}

void etcd_registry::use_lease_ttl(std::int64_t ttl_seconds) {
  // etcd may grant more than we asked (its minimum TTL), never less; refresh for what we got.
  keepalive_period_ = std::min(refresh_, std::chrono::milliseconds(ttl_seconds * 1000 / 3));
  keepalive_period_ = std::max(keepalive_period_, std::chrono::milliseconds(100));
}

void etcd_registry::put_row(std::uint64_t epoch, bool fresh_lease) {
  client_.put(
      self_key_, self_value_, lease_,
      [this, epoch, fresh_lease](std::error_code ec, const std::string& detail, etcd::put_reply) {
        if (!current(epoch)) return;
        if (ec == etcd::errc::lease_not_found && !fresh_lease) {
          lease_ = 0;  // expired between the keepalive and the put
          return grant_lease(epoch);
        }
        if (ec) return fail(ec, detail);
        arm_keepalive(epoch);
        resync(epoch);
      });
}

void etcd_registry::resync(std::uint64_t epoch) {
  client_.range_prefix(
      prefix_, [this, epoch](std::error_code ec, const std::string& detail, etcd::range_reply r) {
        if (!current(epoch)) return;
        if (ec) return fail(ec, detail);
        // Only a full read replaces what we know: events missed while the watch was down are gone.
        rows_.clear();
        for (const auto& kv : r.kvs) {
          host_record row;
          if (accept(kv, row)) remember(kv.key, std::move(row));
        }
        watch_from(epoch, r.revision + 1);
        retry_backoff_.reset();
        const auto alive = alive_;
        report_health({}, std::string());
        if (!*alive || !current(epoch)) return;
        evaluate();
      });
}

void etcd_registry::watch_from(std::uint64_t epoch, std::int64_t revision) {
  watch_started_ = std::chrono::steady_clock::now();
  watch_ = client_.watch_prefix(
      prefix_, revision,
      [this, epoch](const etcd::watch_reply& reply) {
        if (current(epoch)) on_watch_event(reply);
      },
      [this, epoch](std::error_code, const std::string& detail) {
        if (current(epoch)) on_watch_end(epoch, detail);
      });
}

void etcd_registry::on_watch_event(const etcd::watch_reply& reply) {
  bool own_row_deleted = false;
  for (const auto& event : reply.events) {
    host_record row;
    if (event.type == etcd::watch_event::kind::put && accept(event.kv, row)) {
      remember(event.kv.key, std::move(row));
    } else {
      rows_.erase(event.kv.key);
      own_row_deleted = own_row_deleted ||
                        (event.kv.key == self_key_ && event.type == etcd::watch_event::kind::del);
    }
  }
  if (own_row_deleted) repair_row(epoch_);
  if (!reply.events.empty()) evaluate();
}

void etcd_registry::on_watch_end(std::uint64_t epoch, const std::string& detail) {
  watch_ = 0;
  if (std::chrono::steady_clock::now() - watch_started_ >= healthy_watch) watch_backoff_.reset();
  const auto delay = watch_backoff_.next();
  spdlog::info("registry {}: watch ended ({}); reading the hosts again in {} ms", describe(),
               detail, delay.count());
  resync_timer_.expires_after(delay);
  resync_timer_.async_wait([this, alive = alive_, epoch](std::error_code ec) {
    if (!*alive || ec || !current(epoch)) return;
    resync(epoch);
  });
}

void etcd_registry::arm_keepalive(std::uint64_t epoch) {
  keepalive_timer_.expires_after(keepalive_period_);
  keepalive_timer_.async_wait([this, alive = alive_, epoch](std::error_code ec) {
    if (!*alive || ec || !current(epoch)) return;
    send_keepalive(epoch);
  });
}

void etcd_registry::send_keepalive(std::uint64_t epoch) {
  const auto started = refresh_stats::clock::now();
  client_.lease_keepalive(lease_,
                          [this, epoch, started](std::error_code ec, const std::string& detail,
                                                 etcd::keepalive_reply r) {
                            refreshes_.note(started, !ec && r.ttl > 0);
                            if (!current(epoch)) return;
                            if (ec) return fail(ec, detail);
                            if (r.ttl <= 0) return lease_lost("expired");
                            arm_keepalive(epoch);
                          });
}

// Someone deleted our key while our lease lives (etcdctl del, a stale-row removal gone wrong):
// put it back, as the file backend re-creates its row on the next refresh.
void etcd_registry::repair_row(std::uint64_t epoch) {
  spdlog::warn("registry {}: our row was deleted; writing it again", describe());
  client_.put(self_key_, self_value_, lease_,
              [this, epoch](std::error_code ec, const std::string& detail, etcd::put_reply) {
                if (!current(epoch)) return;
                if (ec == etcd::errc::lease_not_found) return lease_lost("not found");
                if (ec) return fail(ec, detail);
              });
}

void etcd_registry::lease_lost(const char* how) {
  // Reachable but our row is gone with the lease: register from scratch. Health stays as it is
  // unless that fails.
  spdlog::warn("registry {}: lease {:x} {}; registering again", describe(), lease_, how);
  lease_ = 0;
  connect();
}

void etcd_registry::fail(std::error_code ec, const std::string& detail) {
  go_down();
  const auto epoch = epoch_;
  const auto delay = retry_backoff_.next();
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait([this, alive = alive_, epoch](std::error_code waited) {
    if (!*alive || waited || !current(epoch)) return;
    connect();
  });
  report_health(ec, detail);  // last: the handler may stop or destroy this registry
}

void etcd_registry::go_down() {
  ++epoch_;
  if (watch_ != 0) client_.cancel_watch(std::exchange(watch_, 0));
  keepalive_timer_.cancel();
  retry_timer_.cancel();
  resync_timer_.cancel();
}

void etcd_registry::remove_stale(const host_id& stale, std::string_view address) {
  if (refuses_own_removal(stale)) return;
  // Compare-and-swap: read the row, and delete it only if it still names that host at that
  // address and nobody wrote it since (its mod_revision).
  auto key = prefix_ + stale.to_string();
  client_.range_key(key, [this, stale, key, address = std::string(address)](
                             std::error_code ec, const std::string& detail, etcd::range_reply r) {
    if (ec) {
      spdlog::warn("registry {}: could not read stale row {}: {}", describe(), stale.to_string(),
                   detail);
      return;
    }
    if (r.kvs.empty()) return;  // gone already
    host_record row;
    const auto& kv = r.kvs.front();
    if (parse_row_text(kv.value, row, expiry_field::absent) || row.id != stale ||
        row.address != address) {
      spdlog::info("registry {}: row {} no longer names {}; kept", describe(), stale.to_string(),
                   base::printable(address));
      return;
    }
    client_.delete_if_unchanged(
        key, kv.mod_revision,
        [this, stale, address](std::error_code ec, const std::string& detail, etcd::txn_reply t) {
          if (ec) {
            spdlog::warn("registry {}: could not remove stale row {} at {}: {}", describe(),
                         stale.to_string(), base::printable(address), detail);
          } else if (t.succeeded) {
            spdlog::info("registry {}: removed stale row {} at {}", describe(), stale.to_string(),
                         base::printable(address));
          } else {
            spdlog::info("registry {}: row {} changed meanwhile; kept", describe(),
                         stale.to_string());
          }
        });
  });
}

void etcd_registry::read(read_handler done) {
  client_.range_prefix(prefix_,
                       [this, done = std::move(done)](std::error_code ec, const std::string& detail,
                                                      etcd::range_reply r) {
                         std::vector<host_record> rows;
                         if (ec) {
                           spdlog::debug("registry {}: read failed: {}", describe(), detail);
                         } else {
                           for (const auto& kv : r.kvs) {
                             host_record row;
                             if (accept(kv, row)) rows.push_back(std::move(row));
                           }
                           bound_read(rows);
                         }
                         if (done) done(ec, std::move(rows));
                       });
}

void etcd_registry::stop(std::function<void()> done) {
  if (state_ == state::running) {
    go_down();
    state_ = state::stopped;
    if (lease_ != 0) {
      // Revoking the lease deletes our key with it, in one step.
      client_.lease_revoke(
          std::exchange(lease_, 0),
          [this, done = std::move(done)](std::error_code ec, const std::string& detail) {
            if (ec && ec != etcd::errc::lease_not_found) {
              spdlog::warn("registry {}: could not remove our row (it expires within {} s): {}",
                           describe(), ttl_seconds_, detail);
            }
            if (done) done();
          });
      return;
    }
  }
  state_ = state::stopped;
  asio::post(executor_, [alive = alive_, done = std::move(done)] {
    if (*alive && done) done();
  });
}

bool etcd_registry::accept(const etcd::key_value& kv, host_record& row) {
  // The key and the row must agree: a row filed under another host's key is not trusted.
  std::error_code why = parse_row_text(kv.value, row, expiry_field::absent);
  if (!why && (!kv.key.starts_with(prefix_) || row.cluster != cluster_ ||
               kv.key.compare(prefix_.size(), std::string::npos, row.id.to_string()) != 0)) {
    why = row_error::foreign_key;
  }
  if (why) skipped_log_.skipped(kv.key, why);
  return !why;
}

void etcd_registry::remember(const std::string& key, host_record row) {
  if (const auto known = rows_.find(key); known != rows_.end()) {
    known->second = std::move(row);
    return;
  }
  if (rows_.size() >= limits::max_registry_hosts) {
    const auto last = std::prev(rows_.end());
    if (key > last->first) return;
    rows_.erase(last);
  }
  rows_.emplace(key, std::move(row));
}

void etcd_registry::evaluate() {
  std::vector<host_record> rows;
  rows.reserve(rows_.size() + 1);
  for (const auto& [key, row] : rows_) rows.push_back(row);
  report_view(view_of(std::move(rows)));
}

offloaded_registry::factory etcd_backend(std::string_view url, std::string cluster,
                                         const options& opts) {
  return [endpoints = etcd::parse_url(url), cluster = std::move(cluster),
          opts](const asio::any_io_executor& own) -> std::unique_ptr<registry> {
    return std::make_unique<etcd_registry>(own, endpoints, cluster, opts);
  };
}

}  // namespace galaxies::registry
