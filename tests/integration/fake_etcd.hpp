// A fake of etcd 3.4's v3 JSON gateway, in the test's io_context, with the real one's habits
// (numbers as strings, zero fields omitted, "result" wrappers on streams, error bodies, one JSON
// object per line on a watch) and with faults on demand: leases that vanish, watches canceled as
// compacted or cut, changes nobody is told about, replies intercepted or refused.
// Only what the registry uses: lease grant/keepalive/revoke, put, range, txn compare-and-delete,
// watch. Leases never expire on their own: tests expire them.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "loopback_http_server.hpp"
#include "registry/etcd/etcd_codec.hpp"

namespace galaxies::test {

class fake_etcd {
 public:
  using exchange_ptr = loopback_http_server::exchange_ptr;
  using json = nlohmann::json;

  struct entry {
    std::string value;
    std::int64_t create_revision = 0;
    std::int64_t mod_revision = 0;
    std::int64_t lease = 0;
  };

  explicit fake_etcd(asio::io_context& io)
      : http_(io, [this](const exchange_ptr& x, const std::string& path, const std::string& body) {
          handle(x, path, body);
        }) {}

  std::string url() const { return "etcd://127.0.0.1:" + std::to_string(http_.port()); }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(http_.port()); }

  // Sees every request first; returns true if it answered (or dropped) it.
  std::function<bool(const exchange_ptr&, const std::string& path, const std::string& body)>
      intercept;

  std::size_t calls(const std::string& path) const {
    const auto it = calls_.find(path);
    return it == calls_.end() ? 0 : it->second;
  }
  std::size_t requests() const { return http_.requests(); }
  const std::map<std::string, entry>& keys() const { return keys_; }
  bool has_lease(std::int64_t id) const { return leases_.count(id) > 0; }
  std::int64_t last_granted_ttl() const { return last_granted_ttl_; }
  std::int64_t revision() const { return revision_; }
  std::size_t open_watches() const {
    std::size_t n = 0;
    for (const auto& w : watches_) n += w.stream->is_open() ? 1 : 0;
    return n;
  }

  // A change every watcher sees.
  void put(const std::string& key, const std::string& value, std::int64_t lease = 0) {
    store(key, value, lease, true);
  }
  void remove(const std::string& key) { erase(key, true); }
  // A change no watcher is told about: as if it happened while the watch was down.
  void put_silently(const std::string& key, const std::string& value) {
    store(key, value, 0, false);
  }
  void remove_silently(const std::string& key) { erase(key, false); }
  // The lease expires: its keys are deleted, with events.
  void expire_lease(std::int64_t id) {
    leases_.erase(id);
    std::vector<std::string> doomed;
    for (const auto& [key, e] : keys_) {
      if (e.lease == id) doomed.push_back(key);
    }
    for (const auto& key : doomed) erase(key, true);
  }
  // The lease is unknown from now on but its keys stay: only a keepalive can tell.
  void forget_lease(std::int64_t id) { leases_.erase(id); }

  void cancel_watches(std::int64_t compact_revision) {
    json result = {{"header", header()}, {"canceled", true}};
    if (compact_revision > 0) result["compact_revision"] = std::to_string(compact_revision);
    for (const auto& w : watches_) w.stream->push(json{{"result", result}}.dump() + "\n");
    // etcd keeps the stream open after a cancel: the client must close it.
  }
  void cut_watches() {
    for (const auto& w : watches_) w.stream->cut();
    watches_.clear();
  }

 private:
  struct watcher {
    exchange_ptr stream;
    std::string key;
    std::string end;
  };

  json header() const {
    return {{"cluster_id", "15118495548433857066"},
            {"member_id", "13668033151171901709"},
            {"revision", std::to_string(revision_)},
            {"raft_term", "2"}};
  }

  static std::string decode(const json& body, const char* field) {
    std::string out;
    if (body.contains(field) && body[field].is_string()) {
      registry::etcd::base64_decode(body[field].get<std::string>(), out);
    }
    return out;
  }
  static std::int64_t number(const json& body, const char* field) {
    if (!body.contains(field)) return 0;
    const auto& v = body[field];
    return v.is_string() ? std::stoll(v.get<std::string>()) : v.get<std::int64_t>();
  }

  json kv_json(const std::string& key, const entry& e) const {
    json kv = {{"key", registry::etcd::base64_encode(key)},
               {"create_revision", std::to_string(e.create_revision)},
               {"mod_revision", std::to_string(e.mod_revision)},
               {"version", "1"},
               {"value", registry::etcd::base64_encode(e.value)}};
    if (e.lease != 0) kv["lease"] = std::to_string(e.lease);
    return kv;
  }

  void store(const std::string& key, const std::string& value, std::int64_t lease, bool notify) {
    ++revision_;
    auto& e = keys_[key];
    if (e.create_revision == 0) e.create_revision = revision_;
    e.value = value;
    e.mod_revision = revision_;
    e.lease = lease;
    if (notify) publish(key, json{{"kv", kv_json(key, e)}});  // PUT: the type is omitted
  }

  void erase(const std::string& key, bool notify) {
    if (keys_.erase(key) == 0) return;
    ++revision_;
    if (notify) {
      publish(key, json{{"type", "DELETE"},
                        {"kv",
                         {{"key", registry::etcd::base64_encode(key)},
                          {"mod_revision", std::to_string(revision_)}}}});
    }
  }

  void publish(const std::string& key, const json& event) {
    std::erase_if(watches_, [](const watcher& w) { return !w.stream->is_open(); });
    for (const auto& w : watches_) {
      if (key < w.key || (!w.end.empty() && key >= w.end)) continue;
      w.stream->push(
          json{{"result", {{"header", header()}, {"events", json::array({event})}}}}.dump() + "\n");
    }
  }

  static std::string error_body(const std::string& message, int code) {
    return json{{"error", message}, {"message", message}, {"code", code}}.dump();
  }

  void handle(const exchange_ptr& x, const std::string& path, const std::string& text) {
    ++calls_[path];
    if (intercept && intercept(x, path, text)) return;
    const json body = json::parse(text, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return x->reply(400, error_body("invalid character", 3));
    }
    if (path == "/v3/lease/grant") {
      const auto id = next_lease_++;
      last_granted_ttl_ = number(body, "TTL");
      leases_[id] = last_granted_ttl_;
      return x->reply(200, json{{"header", header()},
                                {"ID", std::to_string(id)},
                                {"TTL", std::to_string(last_granted_ttl_)}}
                               .dump());
    }
    if (path == "/v3/lease/keepalive") {
      const auto id = number(body, "ID");
      json result = {{"header", header()}, {"ID", std::to_string(id)}};
      if (const auto it = leases_.find(id); it != leases_.end()) {
        result["TTL"] = std::to_string(it->second);
      }
      return x->reply(200, json{{"result", result}}.dump() + "\n");
    }
    if (path == "/v3/lease/revoke") {
      const auto id = number(body, "ID");
      if (!leases_.count(id)) {
        return x->reply(404, error_body("etcdserver: requested lease not found", 5));
      }
      expire_lease(id);
      return x->reply(200, json{{"header", header()}}.dump());
    }
    if (path == "/v3/kv/put") {
      const auto lease = number(body, "lease");
      if (lease != 0 && !leases_.count(lease)) {
        return x->reply(404, error_body("etcdserver: requested lease not found", 5));
      }
      store(decode(body, "key"), decode(body, "value"), lease, true);
      return x->reply(200, json{{"header", header()}}.dump());
    }
    if (path == "/v3/kv/range") {
      const auto key = decode(body, "key");
      const auto end = decode(body, "range_end");
      json reply = {{"header", header()}};
      json kvs = json::array();
      for (const auto& [k, e] : keys_) {
        if (end.empty() ? k == key : (k >= key && k < end)) kvs.push_back(kv_json(k, e));
      }
      if (!kvs.empty()) {
        reply["count"] = std::to_string(kvs.size());
        reply["kvs"] = kvs;
      }
      return x->reply(200, reply.dump());
    }
    if (path == "/v3/kv/txn") {
      const auto& compare = body.at("compare").at(0);
      const auto key = decode(compare, "key");
      const auto expected = number(compare, "mod_revision");
      const auto it = keys_.find(key);
      const bool match = it != keys_.end() && it->second.mod_revision == expected;
      if (match) erase(decode(body.at("success").at(0).at("request_delete_range"), "key"), true);
      json reply = {{"header", header()}};
      if (match) reply["succeeded"] = true;  // false is omitted
      return x->reply(200, reply.dump());
    }
    if (path == "/v3/watch") {
      const auto& create = body.at("create_request");
      watcher w{x, decode(create, "key"), decode(create, "range_end")};
      x->start_stream();
      x->push(json{{"result", {{"header", header()}, {"created", true}}}}.dump() + "\n");
      // No history is kept: a watch from an old revision would miss events, which is exactly
      // what the registry must not rely on.
      watches_.push_back(std::move(w));
      return;
    }
    x->reply(404, "Not Found\n");
  }

  loopback_http_server http_;
  std::map<std::string, std::size_t> calls_;
  std::map<std::string, entry> keys_;
  std::map<std::int64_t, std::int64_t> leases_;    // id -> ttl
  std::int64_t next_lease_ = 7587861000000000001;  // beyond a double's 53 bits
  std::int64_t last_granted_ttl_ = 0;
  std::int64_t revision_ = 1;
  std::vector<watcher> watches_;
};

}  // namespace galaxies::test
