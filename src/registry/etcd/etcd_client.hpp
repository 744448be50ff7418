// The etcd calls the registry makes, typed and asynchronous, over the v3 JSON gateway: lease
// grant/keepalive/revoke, put, range, compare-and-delete, and a prefix watch.
//
// Several endpoints name one etcd cluster. Calls go to the current endpoint; one that cannot be
// reached (a transport failure, not an answer from etcd) makes the call move on to the next, each
// endpoint tried at most once per call, and the next calls start where this one succeeded.
// Every unary call is bounded by the request timeout per attempt. A failure's detail names the
// endpoint: "etcd 127.0.0.1:2379: Connection refused".
//
// Threading: one executor. No handler runs inside a member call or after destruction; a
// handler may destroy this client.
#pragma once

#include <asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "registry/etcd/etcd_codec.hpp"
#include "registry/etcd/etcd_endpoints.hpp"
#include "registry/http/curl_multi.hpp"

namespace galaxies::registry::etcd {

class client {
 public:
  template <class Reply>
  using handler = std::function<void(std::error_code, const std::string& detail, Reply)>;
  using status_handler = std::function<void(std::error_code, const std::string& detail)>;
  using watch_id = std::uint64_t;
  // Every message of the watch but the last: a canceled watch ends it instead.
  using event_handler = std::function<void(const watch_reply&)>;

  client(const asio::any_io_executor& executor, std::vector<endpoint> endpoints,
         std::chrono::milliseconds request_timeout);
  ~client();

  client(const client&) = delete;
  client& operator=(const client&) = delete;

  void lease_grant(std::int64_t ttl_seconds, handler<lease_grant_reply> done);
  void lease_keepalive(std::int64_t lease, handler<keepalive_reply> done);
  void lease_revoke(std::int64_t lease, status_handler done);
  void put(std::string_view key, std::string_view value, std::int64_t lease,
           handler<put_reply> done);
  void range_prefix(std::string_view prefix, handler<range_reply> done);
  void range_key(std::string_view key, handler<range_reply> done);
  void delete_if_unchanged(std::string_view key, std::int64_t mod_revision,
                           handler<txn_reply> done);

  // Watches every key under `prefix` from `start_revision` on, through the current endpoint.
  // `on_end` runs once when the watch breaks (stream ended, malformed message, canceled by the
  // server: watch_canceled), never after cancel_watch().
  watch_id watch_prefix(std::string_view prefix, std::int64_t start_revision,
                        event_handler on_event, status_handler on_end);
  void cancel_watch(watch_id id);

  const std::vector<endpoint>& endpoints() const noexcept { return endpoints_; }

 private:
  using parse_fn = std::function<std::error_code(std::string_view body, std::string& detail)>;
  struct watch_state;

  template <class Reply, class Parse>
  void typed_call(const char* path, std::string body, handler<Reply> done, Parse parse);
  void call(const char* path, std::string body, parse_fn parse, status_handler done,
            std::size_t attempt, std::string failures);
  void on_watch_data(watch_id id, const std::shared_ptr<watch_state>& w, std::string_view chunk);
  void end_watch(watch_id id, const std::shared_ptr<watch_state>& w, std::error_code ec,
                 const std::string& detail);

  std::vector<endpoint> endpoints_;
  std::size_t current_ = 0;
  std::chrono::milliseconds request_timeout_;
  watch_id next_watch_ = 1;
  std::unordered_map<watch_id, std::shared_ptr<watch_state>> watches_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // Last: destroyed first, so no HTTP completion reaches a half-destroyed client.
  http::client http_;
};

}  // namespace galaxies::registry::etcd
