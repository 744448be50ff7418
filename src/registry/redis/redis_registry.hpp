// The Redis registry backend ("redis://[:PASSWORD@]HOST:PORT[/DB]", hiredis on the executor).
//
// Each host keeps one key, galaxies:<cluster>:host:<uuid>, holding its row, with a TTL (PX ttl)
// that it refreshes every `refresh` (re-creating the key if it vanished). Joins and leaves are
// published on galaxies:<cluster>:hosts; every host rescans (SCAN + MGET) on each message, on
// expired/del keyspace events when the server emits them (we never change its configuration),
// and every `refresh` regardless, so a host that dies silently drops out within ttl + refresh.
// The layout is in redis_layout.hpp.
//
// Two connections per session: commands, and a subscriber. Any failure of either (connection
// lost, an unanswered command: a paused server) ends the session: the last view stands, health
// turns to an error once, and a new session is opened with capped backoff. Every session starts
// by subscribing, then SETs our key and PUBLISHes a join, then rescans: events missed while
// disconnected are never trusted to be replayed, and a restarted Redis without persistence gets
// every host's key back as each host reconnects.
//
// Threading: like every registry, it lives on one executor; call every member there. No
// callback runs after destruction, not even a pending read() or stop() completion. Destroying it
// without stop() leaves the key to expire by its TTL, exactly like a crash.
#pragma once

#include <asio/any_io_executor.hpp>
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
#include "registry/redis/redis_connection.hpp"
#include "registry/redis/redis_layout.hpp"
#include "registry/redis/redis_url.hpp"
#include "registry/store_backend.hpp"

namespace galaxies::registry {

class redis_registry final : public store_backend {
 public:
  // `cluster` is already validated.
  redis_registry(const asio::any_io_executor& executor, redis::target where, std::string cluster,
                 const options& opts);
  ~redis_registry() override;

  redis_registry(const redis_registry&) = delete;
  redis_registry& operator=(const redis_registry&) = delete;

  void start(const host_record& self, view_handler on_view, health_handler on_health) override;
  void remove_stale(const host_id& stale, std::string_view address) override;
  void read(read_handler done) override;
  void stop(std::function<void()> done) override;

 private:
  struct read_op {
    std::unique_ptr<redis::connection> conn;
    read_handler done;
  };

  bool current(std::uint64_t session) const {
    return session == session_ && state_ == state::running;
  }
  void open_session();
  void close_session();
  void on_part_ready(std::uint64_t session);
  void session_failed(std::uint64_t session, std::error_code ec, const std::string& detail);
  void register_self(std::uint64_t session);
  void arm_refresh();
  void on_refresh();
  void request_reconcile();
  void on_message(const std::string& channel, const std::string& payload);
  // Reports the view if its keys changed. Reporting is the last thing it does, so on_view may
  // call stop() or even destroy this object.
  void evaluate(const redis::parsed_rows& rows);
  void finish_stop();
  void finish_read(std::uint64_t id, std::error_code ec, const std::string& detail,
                   std::vector<host_record> rows);
  std::vector<std::string> set_command() const;

  redis::target where_;
  redis::layout layout_;
  std::chrono::milliseconds ttl_;
  std::chrono::milliseconds refresh_;
  std::chrono::milliseconds request_timeout_;

  std::string self_key_;
  std::string self_value_;

  // The current session; its number changes whenever it ends, which retires late callbacks.
  std::uint64_t session_ = 0;
  std::unique_ptr<redis::connection> commands_;
  std::unique_ptr<redis::connection> subscriber_;
  bool commands_ready_ = false;
  bool subscribed_ = false;
  bool registered_ = false;  // our SET of this session succeeded
  bool ever_registered_ = false;
  bool registering_ = false;  // our SET is on its way
  bool scanning_ = false;
  bool rescan_ = false;  // something changed during the running scan: scan once more after it
  std::size_t failed_attempts_ = 0;
  base::backoff backoff_;
  asio::steady_timer refresh_timer_;
  asio::steady_timer retry_timer_;

  std::vector<std::function<void()>> stop_done_;
  std::map<std::uint64_t, read_op> reads_;
  std::uint64_t next_read_ = 0;
};

}  // namespace galaxies::registry
