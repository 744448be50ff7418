#include "registry/etcd/etcd_client.hpp"

#include <stdexcept>
#include <utility>

#include "base/text.hpp"

namespace galaxies::registry::etcd {
namespace {

// A watch message is small (a few rows); anything this large is not etcd talking.
constexpr std::size_t max_watch_line = 16u << 20;

std::string where(const endpoint& ep) {
  return "etcd " + ep.to_string();
}

}  // namespace

struct client::watch_state {
  line_splitter lines{max_watch_line};
  bool active = true;
  http::client::request_id request = 0;
  std::string where;
  event_handler on_event;
  status_handler on_end;
};

client::client(const asio::any_io_executor& executor, std::vector<endpoint> endpoints,
               std::chrono::milliseconds request_timeout)
    : endpoints_(std::move(endpoints)),
      request_timeout_(request_timeout),
      http_(executor, http::client::settings{.connect_timeout = request_timeout}) {
  if (endpoints_.empty()) throw std::invalid_argument("etcd client needs at least one endpoint");
}

client::~client() {
  *alive_ = false;
}

void client::call(const char* path, std::string body, parse_fn parse, status_handler done,
                  std::size_t attempt, std::string failures) {
  const std::size_t used = current_;
  const endpoint& ep = endpoints_[used];
  std::string url = ep.base_url() + path;
  auto send = body;  // kept for a retry on the next endpoint
  http_.post(url, std::move(send), request_timeout_,
             [this, path, used, attempt, body = std::move(body), parse = std::move(parse),
              done = std::move(done), failures = std::move(failures)](http::result r) mutable {
               const std::string at = where(endpoints_[used]);
               if (r.ec) {
                 failures += (failures.empty() ? "" : "; ") + at + ": " + r.detail;
                 if (attempt + 1 < endpoints_.size()) {
                   // Another call may have moved on already; do not skip an endpoint twice.
                   if (current_ == used) current_ = (used + 1) % endpoints_.size();
                   call(path, std::move(body), std::move(parse), std::move(done), attempt + 1,
                        std::move(failures));
                   return;
                 }
                 done(r.ec, failures);
                 return;
               }
               std::string detail;
               const auto ec = r.status == 200 ? parse(r.body, detail)
                                               : parse_http_error(r.status, r.body, detail);
               done(ec, ec ? at + ": " + detail : std::string());
             });
}

template <class Reply, class Parse>
void client::typed_call(const char* path, std::string body, handler<Reply> done, Parse parse) {
  auto reply = std::make_shared<Reply>();
  call(
      path, std::move(body),
      [reply, parse](std::string_view text, std::string& detail) {
        return parse(text, *reply, detail);
      },
      [reply, done = std::move(done)](std::error_code ec, const std::string& detail) {
        done(ec, detail, std::move(*reply));
      },
      0, std::string());
}

void client::lease_grant(std::int64_t ttl_seconds, handler<lease_grant_reply> done) {
  typed_call("/v3/lease/grant", lease_grant_request(ttl_seconds), std::move(done),
             parse_lease_grant);
}

void client::lease_keepalive(std::int64_t lease, handler<keepalive_reply> done) {
  typed_call("/v3/lease/keepalive", lease_keepalive_request(lease), std::move(done),
             parse_keepalive);
}

void client::lease_revoke(std::int64_t lease, status_handler done) {
  call("/v3/lease/revoke", lease_revoke_request(lease), parse_revoke, std::move(done), 0,
       std::string());
}

void client::put(std::string_view key, std::string_view value, std::int64_t lease,
                 handler<put_reply> done) {
  typed_call("/v3/kv/put", put_request(key, value, lease), std::move(done), parse_put);
}

void client::range_prefix(std::string_view prefix, handler<range_reply> done) {
  typed_call("/v3/kv/range", range_prefix_request(prefix), std::move(done), parse_range);
}

void client::range_key(std::string_view key, handler<range_reply> done) {
  typed_call("/v3/kv/range", range_key_request(key), std::move(done), parse_range);
}

void client::delete_if_unchanged(std::string_view key, std::int64_t mod_revision,
                                 handler<txn_reply> done) {
  typed_call("/v3/kv/txn", delete_if_unchanged_request(key, mod_revision), std::move(done),
             parse_txn);
}

client::watch_id client::watch_prefix(std::string_view prefix, std::int64_t start_revision,
                                      event_handler on_event, status_handler on_end) {
  const watch_id id = next_watch_++;
  auto w = std::make_shared<watch_state>();
  const endpoint& ep = endpoints_[current_];
  w->where = where(ep);
  w->on_event = std::move(on_event);
  w->on_end = std::move(on_end);
  watches_.emplace(id, w);
  w->request = http_.stream(
      ep.base_url() + "/v3/watch", watch_prefix_request(prefix, start_revision),
      [this, id, w](std::string_view chunk) { on_watch_data(id, w, chunk); },
      [this, id, w](http::result r) {
        if (!w->active) return;
        // An error body was parsed as a watch message already; this is what remains.
        const bool refused = r.status != 0 && r.status != 200;
        end_watch(id, w, r.ec,
                  refused ? "HTTP " + std::to_string(r.status) + " (" + r.detail + ")" : r.detail);
      });
  return id;
}

void client::cancel_watch(watch_id id) {
  const auto it = watches_.find(id);
  if (it == watches_.end()) return;
  it->second->active = false;
  http_.cancel(it->second->request);
  watches_.erase(it);
}

void client::on_watch_data(watch_id id, const std::shared_ptr<watch_state>& w,
                           std::string_view chunk) {
  if (!w->active) return;
  w->lines.feed(chunk);
  std::string line;
  while (w->active && w->lines.next(line)) {
    watch_reply reply;
    std::string detail;
    if (const auto ec = parse_watch(line, reply, detail)) return end_watch(id, w, ec, detail);
    if (reply.canceled) {
      detail = reply.compact_revision > 0
                   ? "watch start revision compacted (now at " +
                         std::to_string(reply.compact_revision) + ")"
                   : "watch canceled" + (reply.cancel_reason.empty()
                                             ? ""
                                             : ": " + base::printable(reply.cancel_reason, 200));
      return end_watch(id, w, errc::watch_canceled, detail);
    }
    const auto on_event = w->on_event;  // a copy: the handler may cancel or destroy
    const auto alive = alive_;
    on_event(reply);
    if (!*alive) return;
  }
  if (w->active && w->lines.overflowed()) {
    end_watch(id, w, errc::malformed_reply,
              "a watch message exceeds " + std::to_string(max_watch_line) + " bytes");
  }
}

void client::end_watch(watch_id id, const std::shared_ptr<watch_state>& w, std::error_code ec,
                       const std::string& detail) {
  if (!w->active) return;
  w->active = false;
  http_.cancel(w->request);  // no-op when the stream already ended
  watches_.erase(id);
  const auto on_end = w->on_end;
  on_end(ec, w->where + ": " + detail);
}

}  // namespace galaxies::registry::etcd
