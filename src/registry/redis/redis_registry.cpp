#include "registry/redis/redis_registry.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio/post.hpp>

#include "base/limits.hpp"
#include "base/text.hpp"
#include "registry/backends.hpp"
#include "registry/redis/redis_scan.hpp"
#include "registry/row_json.hpp"

namespace galaxies::registry {
namespace {

// Reconnects back off from 100 ms to about a second: a restarted Redis is found again quickly,
// and a dead one costs one refused connect per second.
constexpr std::chrono::milliseconds retry_initial{100};
constexpr std::chrono::milliseconds retry_max{1000};

}  // namespace

redis_registry::redis_registry(const asio::any_io_executor& executor, redis::target where,
                               std::string cluster, const options& opts)
    : store_backend(executor, std::move(cluster), where.describe()),
      where_(std::move(where)),
      layout_(cluster_, where_.db.value_or(0)),
      ttl_(opts.ttl),
      refresh_(refresh_period(opts)),
      request_timeout_(opts.request_timeout),
      backoff_(retry_initial, retry_max),
      refresh_timer_(executor),
      retry_timer_(executor) {
  warn_if_refresh_not_below(refresh_, ttl_);
}

redis_registry::~redis_registry() {
  *alive_ = false;
  // The connections' destructors free their contexts silently; our key expires by its TTL.
}

void redis_registry::start(const host_record& self, view_handler on_view,
                           health_handler on_health) {
  if (!begin(self, std::move(on_view), std::move(on_health))) return;
  self_key_ = layout_.key(self_.id);
  self_value_ = row_to_text(self_, expiry_field::absent);
  arm_refresh();
  open_session();  // every outcome is posted: nothing runs from inside start()
}

std::vector<std::string> redis_registry::set_command() const {
  return {"SET", self_key_, self_value_, "PX", std::to_string(ttl_.count())};
}

void redis_registry::open_session() {
  const auto session = ++session_;
  const auto timeout = request_timeout_;
  commands_ = std::make_unique<redis::connection>(executor_, where_, timeout);
  subscriber_ = std::make_unique<redis::connection>(executor_, where_, timeout);
  const auto lost = [this, session](std::error_code ec, const std::string& detail) {
    session_failed(session, ec, detail);
  };
  commands_->connect(
      timeout,
      [this, session](std::error_code ec, const std::string& detail) {
        if (!current(session)) return;
        if (ec) return session_failed(session, ec, detail);
        commands_ready_ = true;
        on_part_ready(session);
      },
      lost);
  subscriber_->connect(
      timeout,
      [this, session](std::error_code ec, const std::string& detail) {
        if (!current(session)) return;
        if (ec) return session_failed(session, ec, detail);
        // Keyspace events arrive per key (K) or per event (E), as the server is configured; we
        // take whichever comes and never change the server's configuration.
        subscriber_->subscribe(
            {layout_.hosts_channel(), layout_.expired_channel(), layout_.deleted_channel()},
            {layout_.keyspace_pattern()},
            [this, session](const std::string& channel, const std::string& payload) {
              if (current(session)) on_message(channel, payload);
            },
            [this, session](std::error_code ec, const std::string& detail) {
              if (!current(session)) return;
              if (ec) return session_failed(session, ec, detail);
              subscribed_ = true;
              on_part_ready(session);
            });
      },
      lost);
}

void redis_registry::close_session() {
  ++session_;
  commands_.reset();
  subscriber_.reset();
  commands_ready_ = subscribed_ = registered_ = registering_ = false;
  scanning_ = rescan_ = false;
}

void redis_registry::on_part_ready(std::uint64_t session) {
  // Subscribed before registering and reading: a join published after our scan began is seen.
  if (commands_ready_ && subscribed_) register_self(session);
}

void redis_registry::session_failed(std::uint64_t session, std::error_code ec,
                                    const std::string& detail) {
  if (!current(session)) return;
  close_session();
  ++failed_attempts_;
  retry_timer_.expires_after(backoff_.next());
  retry_timer_.async_wait([this, alive = alive_](std::error_code wait_ec) {
    if (!*alive || wait_ec || state_ != state::running) return;
    open_session();
  });
  // Last: the handler may stop or destroy this registry. The last view stands meanwhile.
  report_health(ec, detail);
}

void redis_registry::register_self(std::uint64_t session) {
  if (registering_) return;  // a del event and a leave message about us come together
  registering_ = true;
  commands_->command(set_command(), [this, session](std::error_code ec, const std::string& detail,
                                                    redis::reply value) {
    if (!current(session)) return;
    registering_ = false;
    if (ec) return session_failed(session, ec, detail);
    if (!value.is_status("OK")) {
      return session_failed(session, redis::errc::unexpected_reply,
                            "redis " + where_.endpoint() + ": unexpected reply to SET");
    }
    if (reported_healthy() == false) {
      spdlog::debug("registry {}: registered after {} failed attempt(s)", describe(),
                    failed_attempts_);
    }
    registered_ = true;
    ever_registered_ = true;
    failed_attempts_ = 0;
    backoff_.reset();
    request_reconcile();
    report_health({}, {});  // last: the handler may stop or destroy this registry
  });
  // Every other host rescans on this; our own subscriber ignores it.
  commands_->command({"PUBLISH", layout_.hosts_channel(), redis::join_message(self_.id)},
                     [this, session](std::error_code ec, const std::string& detail, redis::reply) {
                       if (current(session) && ec) session_failed(session, ec, detail);
                     });
}

void redis_registry::arm_refresh() {
  refresh_timer_.expires_after(refresh_);
  refresh_timer_.async_wait([this, alive = alive_](std::error_code ec) {
    if (!*alive || ec || state_ != state::running) return;
    on_refresh();
  });
}

void redis_registry::on_refresh() {
  arm_refresh();
  if (!registered_ || !commands_) return;  // reconnecting: the new session registers itself
  const auto session = session_;
  // XX: only if the key still exists, so that a vanished key is noticed and announced again.
  auto refresh = set_command();
  refresh.push_back("XX");
  commands_->command(
      std::move(refresh), [this, session, started = refresh_stats::clock::now()](
                              std::error_code ec, const std::string& detail, redis::reply value) {
        refreshes_.note(started, !ec);
        if (!current(session)) return;
        if (ec) return session_failed(session, ec, detail);
        if (value.is_nil()) {
          spdlog::info("registry {}: our key had vanished (expired or deleted); registering again",
                       describe());
          register_self(session);
        }
      });
  // The periodic rescan: expiry is seen within ttl + refresh without keyspace notifications.
  request_reconcile();
}

void redis_registry::request_reconcile() {
  if (!registered_ || !commands_) return;
  if (scanning_) {
    rescan_ = true;  // a burst of messages during one scan costs one more scan, not one each
    return;
  }
  scanning_ = true;
  rescan_ = false;
  const auto session = session_;
  redis::scan_rows(
      *commands_, layout_,
      [this, session](std::error_code ec, const std::string& detail, redis::parsed_rows rows) {
        if (!current(session)) return;
        scanning_ = false;
        // A failed read says nothing about the hosts: the session ends and the last view stands.
        if (ec) return session_failed(session, ec, detail);
        if (rescan_) request_reconcile();
        evaluate(rows);
      });
}

void redis_registry::on_message(const std::string& channel, const std::string& payload) {
  if (channel == layout_.hosts_channel()) {
    if (redis::host_of_message(payload) != self_.id) return request_reconcile();
    // About us: our own join, or someone removed our key as stale (our own leave is only sent
    // when stopping, and nothing is delivered then). Register again now, not at the next refresh.
    if (payload == redis::leave_message(self_.id) && registered_ && !registering_) {
      spdlog::warn("registry {}: our key was removed by another host; registering again",
                   describe());
      register_self(session_);
    }
    return;
  }
  // A keyspace event: on __keyevent@<db>__:<event> the payload is the key; on
  // __keyspace@<db>__:<key> the payload is the event.
  std::string_view key = payload;
  if (const auto about = layout_.key_of_keyspace_channel(channel)) {
    if (payload != "expired" && payload != "del") return;
    key = *about;
  }
  if (key == self_key_) {
    if (!registered_ || registering_) return;
    spdlog::warn("registry {}: our key was removed or expired; registering again", describe());
    register_self(session_);
    return;
  }
  if (layout_.id_of_key(key)) request_reconcile();
}

void redis_registry::evaluate(const redis::parsed_rows& rows) {
  for (const auto& bad : rows.malformed) skipped_log_.skipped(bad.key, bad.why);
  report_view(view_of(rows.rows));
}

void redis_registry::remove_stale(const host_id& stale, std::string_view address) {
  if (refuses_own_removal(stale)) return;
  if (!registered_ || !commands_) {
    // Rows are hints: the stale key expires by its TTL, and the next refused handshake asks again.
    spdlog::info("registry {}: not connected; stale row {} at {} is left to expire", describe(),
                 stale.to_string(), base::printable(address));
    return;
  }
  const auto session = session_;
  commands_->command({"EVAL", redis::compare_and_delete_script, "1", layout_.key(stale),
                      stale.to_string(), std::string(address)},
                     [this, session, stale, address = base::printable(address)](
                         std::error_code ec, const std::string& detail, redis::reply value) {
                       if (!current(session)) return;
                       if (ec) {
                         // A lost connection ends the session through on_lost; this is only the log
                         // line.
                         spdlog::warn("registry {}: could not remove stale row {} at {}: {}",
                                      describe(), stale.to_string(), address, detail);
                         return;
                       }
                       // 0: someone re-registered or removed it first; that is the
                       // compare-and-swap.
                       if (value.type != redis::reply::kind::integer || value.integer != 1) return;
                       spdlog::info("registry {}: removed stale row {} at {}", describe(),
                                    stale.to_string(), address);
                       commands_->command(
                           {"PUBLISH", layout_.hosts_channel(), redis::leave_message(stale)},
                           [](std::error_code, const std::string&, redis::reply) {});
                       request_reconcile();
                     });
}

void redis_registry::read(read_handler done) {
  const auto id = ++next_read_;
  auto& op = reads_[id];
  op.conn = std::make_unique<redis::connection>(executor_, where_, request_timeout_);
  op.done = std::move(done);
  auto* conn = op.conn.get();
  conn->connect(
      request_timeout_,
      [this, id, conn](std::error_code ec, const std::string& detail) {
        if (ec) return finish_read(id, ec, detail, {});
        redis::scan_rows(
            *conn, layout_,
            [this, id](std::error_code ec, const std::string& detail, redis::parsed_rows rows) {
              for (const auto& bad : rows.malformed) skipped_log_.skipped(bad.key, bad.why);
              bound_read(rows.rows);
              finish_read(id, ec, detail, std::move(rows.rows));
            });
      },
      [this, id](std::error_code ec, const std::string& detail) {
        finish_read(id, ec, detail, {});
      });
}

void redis_registry::finish_read(std::uint64_t id, std::error_code ec, const std::string& detail,
                                 std::vector<host_record> rows) {
  const auto it = reads_.find(id);
  if (it == reads_.end()) return;
  auto done = std::move(it->second.done);
  reads_.erase(it);  // closes the connection; we may be inside one of its handlers, which is fine
  // The handler gets the code only; the log says why.
  if (ec) spdlog::warn("registry {}: read failed: {}", describe(), detail);
  asio::post(executor_,
             [alive = alive_, done = std::move(done), ec, rows = std::move(rows)]() mutable {
               if (*alive && done) done(ec, std::move(rows));
             });
}

void redis_registry::stop(std::function<void()> done) {
  if (state_ == state::stopping) {
    stop_done_.push_back(std::move(done));
    return;
  }
  if (state_ != state::running) {
    state_ = state::stopped;
    asio::post(executor_, [alive = alive_, done = std::move(done)] {
      if (*alive && done) done();
    });
    return;
  }
  state_ = state::stopping;
  stop_done_.push_back(std::move(done));
  refresh_timer_.cancel();
  retry_timer_.cancel();
  subscriber_.reset();
  if (!commands_ || !commands_ready_) {
    if (ever_registered_) {
      spdlog::info("registry {}: not connected; our key expires within {} ms", describe(),
                   ttl_.count());
    }
    asio::post(executor_, [this, alive = alive_] {
      if (*alive) finish_stop();
    });
    return;
  }
  // Bounded: the connection answers, fails, or declares itself dead after the request timeout.
  commands_->command(
      {"DEL", self_key_}, [this](std::error_code ec, const std::string& detail, redis::reply) {
        if (ec) {
          spdlog::warn("registry {}: could not remove our key (it expires within {} ms): {}",
                       describe(), ttl_.count(), detail);
        }
      });
  commands_->command({"PUBLISH", layout_.hosts_channel(), redis::leave_message(self_.id)},
                     [this](std::error_code, const std::string&, redis::reply) { finish_stop(); });
}

void redis_registry::finish_stop() {
  if (state_ != state::stopping) return;
  state_ = state::stopped;
  close_session();  // we may be inside a handler of the commands connection, which is fine
  auto dones = std::move(stop_done_);
  stop_done_.clear();
  for (auto& done : dones) {
    asio::post(executor_, [alive = alive_, done = std::move(done)] {
      if (*alive && done) done();
    });
  }
}

offloaded_registry::factory redis_backend(std::string_view url, std::string cluster,
                                          const options& opts) {
  return [where = redis::parse_url(url), cluster = std::move(cluster),
          opts](const asio::any_io_executor& own) -> std::unique_ptr<registry> {
    return std::make_unique<redis_registry>(own, where, cluster, opts);
  };
}

}  // namespace galaxies::registry
