// One connection to a Redis server over hiredis's async API, on an Asio executor.
//
// - connect(): TCP connect, then AUTH and SELECT when the target names them, then PING; `done`
//   runs once all of that answered, or with the error, within `timeout` (hiredis 0.14 has no
//   connect timeout of its own; a timer enforces it). A paused server still accepts TCP in the
//   kernel, hence the PING: connected means answering.
// - command(): sends one command; `done` gets the reply, or an error: a server error reply
//   (errc::server_error, its text in the detail) or the connection's failure.
// - subscribe(): turns the connection into a subscriber (no command() afterwards); `on_message`
//   gets every message of those channels and patterns.
// - Every command and subscription must be answered within `request_timeout`; one that is not
//   (a paused server, a dead peer) declares the connection dead: it is dropped and on_lost runs.
// - on_lost runs once when an established connection fails; never after close().
//
// Threading: everything on the executor. Every handler is posted, never run from inside hiredis
// or from inside the call that started it, so any handler may close or destroy the connection.
// close() and the destructor silence every handler not yet run. The fd is close-on-exec.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "registry/redis/redis_reply.hpp"
#include "registry/redis/redis_url.hpp"

struct redisAsyncContext;
struct redisReply;

namespace galaxies::registry::redis {

class hiredis_asio;

class connection {
 public:
  // `detail` is a one-line human-readable account, e.g. "redis 127.0.0.1:6379: Connection
  // refused"; empty on success.
  using status_handler = std::function<void(std::error_code, const std::string& detail)>;
  using reply_handler =
      std::function<void(std::error_code, const std::string& detail, reply value)>;
  using message_handler =
      std::function<void(const std::string& channel, const std::string& payload)>;

  connection(const asio::any_io_executor& executor, target where,
             std::chrono::milliseconds request_timeout);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  void connect(std::chrono::milliseconds timeout, status_handler done, status_handler on_lost);
  void command(std::vector<std::string> args, reply_handler done);
  // SUBSCRIBE `channels` and PSUBSCRIBE `patterns`; `on_message` gets the channel a message came
  // on (for a pattern too) and its payload. `done` runs when the server confirmed every one, or
  // with the connection's failure.
  void subscribe(std::vector<std::string> channels, std::vector<std::string> patterns,
                 message_handler on_message, status_handler done);
  void close();

  bool ready() const noexcept { return phase_ == phase::ready || phase_ == phase::subscribed; }
  const target& where() const { return where_; }

 private:
  enum class phase { idle, connecting, ready, subscribed, failed, closed };
  struct pending;  // one command's handler, hiredis's privdata

  static void on_connect_cb(const redisAsyncContext* context, int status);
  static void on_reply_cb(redisAsyncContext* context, void* reply, void* privdata);
  static void on_subscription_cb(redisAsyncContext* context, void* reply, void* privdata);

  void start_setup();
  void send(const std::vector<std::string>& args, reply_handler done, bool timed);
  void on_reply(const redisReply* value, reply_handler done, bool timed);
  void on_subscription(const redisReply* value);
  void on_detached(const redisAsyncContext& context);
  // Declares the connection dead (first reason wins) and frees the context.
  void fail(std::error_code ec, std::string detail);
  void note_context_error(const redisAsyncContext& context);
  void expect_reply();
  void answered();
  void arm_timer();
  void on_timer();
  void post_status(status_handler handler, std::error_code ec, std::string detail);

  asio::any_io_executor executor_;
  target where_;
  std::chrono::milliseconds request_timeout_;
  phase phase_ = phase::idle;
  bool dying_ = false;  // failed, the free still to come: no new commands
  std::chrono::milliseconds connect_timeout_{0};
  std::shared_ptr<hiredis_asio> events_;

  status_handler connect_done_;
  status_handler on_lost_;
  message_handler on_message_;
  status_handler subscribe_done_;
  std::size_t unconfirmed_ = 0;  // subscriptions the server has not confirmed yet

  // Failure reason, kept from the first moment we learn it (errno is only valid then).
  std::error_code failure_;
  std::string failure_detail_;

  using clock = std::chrono::steady_clock;
  clock::time_point connect_deadline_ = clock::time_point::max();
  std::deque<clock::time_point> deadlines_;  // one per unanswered reply, oldest first
  asio::steady_timer timer_;
  bool timer_armed_ = false;

  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace galaxies::registry::redis
