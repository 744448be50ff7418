// An asynchronous HTTP client: libcurl's multi interface driven by an Asio executor, with no
// thread of its own. curl tells us which sockets to wait on (CURLMOPT_SOCKETFUNCTION) and when to
// wake it (CURLMOPT_TIMERFUNCTION); one stream_descriptor per curl socket and one steady_timer do
// the waiting, and curl_multi_socket_action does the work.
//
// Rules this file keeps, because libcurl and Asio each assume they own things:
// - No easy handle is added to or removed from the multi handle inside a curl callback; finished
//   transfers are collected after curl_multi_socket_action returns.
// - curl owns its sockets: a descriptor is release()d, never closed, and curl's close callback
//   releases ours before the fd goes away, so a reused fd number never meets a stale registration.
// - Every socket is close-on-exec (workers are fork+exec'd from this process), and so are the
//   descriptors curl_multi_init opens for itself.
// - No handler runs inside a member call, and none after cancel() or destruction: results and
//   stream chunks are posted to the executor and checked against the live request table.
//
// Threading: one executor; call every member there.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>

namespace galaxies::registry::http {

// Expected failures: libcurl's CURLcode values as they are, plus our own from 1000 on.
enum class errc {
  stream_closed = 1000,  // the server ended a streaming response
  reply_too_large,       // the body exceeded settings::max_body
  setup_failed,          // curl could not create or configure the transfer
};

const std::error_category& error_category() noexcept;
std::error_code make_error_code(errc e) noexcept;
std::error_code curl_error(int curl_code) noexcept;

struct result {
  std::error_code ec;  // the transfer failed; empty when a complete HTTP answer arrived
  std::string detail;  // why, in words ("Connection refused", "Operation timed out after ...")
  long status = 0;     // the HTTP status, 0 if none arrived
  std::string body;    // post(): the whole body; stream(): empty (chunks went to on_data)
};

class client {
 public:
  using request_id = std::uint64_t;  // 0 is never a request
  using done_handler = std::function<void(result)>;
  using data_handler = std::function<void(std::string_view chunk)>;

  struct settings {
    std::chrono::milliseconds connect_timeout{3000};
    std::size_t max_body = 16u << 20;  // per reply, or per undelivered part of a stream
    // TCP keepalive on streams, so a silently dead server ends the stream rather than hanging it.
    std::chrono::seconds keepalive_idle{5};
    std::chrono::seconds keepalive_interval{2};
  };

  explicit client(const asio::any_io_executor& executor) : client(executor, settings{}) {}
  client(const asio::any_io_executor& executor, settings s);
  // Cancels every request in flight; none of their handlers runs.
  ~client();

  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // POSTs a JSON body; `done` runs once with the whole reply, or with an error no later than
  // `timeout` after the call (connecting included).
  request_id post(const std::string& url, std::string body, std::chrono::milliseconds timeout,
                  done_handler done);

  // POSTs a JSON body and streams the reply: `on_data` runs for every chunk as it arrives (in
  // order; chunk borders are arbitrary), then `done` runs once when the stream ends, always with
  // an error (stream_closed when the server ended it cleanly). No total timeout.
  request_id stream(const std::string& url, std::string body, data_handler on_data,
                    done_handler done);

  // Stops a request; none of its handlers runs afterwards. False if it is unknown or done.
  bool cancel(request_id id);

  std::size_t active() const noexcept { return requests_.size(); }

 private:
  struct request;
  struct socket_state;

  request_id start(const std::string& url, std::string body, std::chrono::milliseconds timeout,
                   data_handler on_data, done_handler done);
  void fail_later(request& r, std::error_code ec, std::string detail);
  void schedule_delivery(request& r);
  void deliver(request_id id);
  void collect_finished();
  void finish(request& r, int curl_code);
  void detach(request& r);

  // curl's callbacks: sockets and the timer only; they never run user code.
  void on_socket(int fd, int what);
  void on_timer_request(long timeout_ms);
  void arm(const std::shared_ptr<socket_state>& s);
  void on_ready(const std::shared_ptr<socket_state>& s, int select, std::error_code ec);
  void on_timeout();
  int open_socket(int family, int type, int protocol);
  void close_socket(int fd);
  void forget(int fd);

  // The trampolines with curl's exact signatures (in the .cpp, where curl.h is).
  friend struct curl_callbacks;

  asio::any_io_executor executor_;
  settings settings_;
  void* multi_ = nullptr;  // CURLM*; kept opaque so that this header does not pull in curl.h
  asio::steady_timer timer_;
  request_id next_id_ = 1;
  std::map<request_id, std::unique_ptr<request>> requests_;
  std::unordered_map<int, std::shared_ptr<socket_state>> sockets_;
  // Handlers hold a copy and check it first: false once this object is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace galaxies::registry::http

template <>
struct std::is_error_code_enum<galaxies::registry::http::errc> : std::true_type {};
