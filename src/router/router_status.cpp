// What a master says of itself: `galaxies status`, its HTTP /status.json and /metrics (which the
// host renders from this document), and the membership events observers watch.
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "router/router.hpp"
#include "transport/socket_setup.hpp"
#include "wire/codes.hpp"

namespace galaxies::router {

namespace {
std::int64_t as_ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// What went through a connection: the link's own counts and the router's.
void add_traffic(nlohmann::json& j, const connection& c) {
  const auto& t = c.link->traffic();
  j["frames_in"] = t.frames_in;
  j["frames_out"] = c.frames_out;
  j["bytes_in"] = t.bytes_in;
  j["bytes_out"] = t.bytes_out;
  // Of the frames the router queued on it, the bytes, and those copied into its queue rather
  // than written from where they were read (cut-through, transport/link.hpp).
  j["bytes_queued"] = t.bytes_queued;
  j["bytes_copied"] = t.bytes_copied;
  j["queued_bytes"] = c.link->queued_bytes();
  j["stalls"] = c.stalls;
}

// {"wrong_target": 2, ...}: the nonzero counts only.
nlohmann::json by_refuse_code(const std::array<std::uint64_t, 16>& counts) {
  nlohmann::json j = nlohmann::json::object();
  for (std::size_t code = 0; code < counts.size(); ++code)
    if (counts[code] != 0 && wire::detail::is_refuse_code(static_cast<std::uint16_t>(code)))
      j[wire::to_string(static_cast<wire::refuse_code>(code))] = counts[code];
  return j;
}

nlohmann::json by_close_reason(const router_counters& c) {
  nlohmann::json j = nlohmann::json::object();
  for (std::size_t kind = 0; kind < c.closed.size(); ++kind) {
    nlohmann::json reasons = nlohmann::json::object();
    for (std::size_t reason = 0; reason < c.closed[kind].size(); ++reason)
      if (c.closed[kind][reason] != 0)
        reasons[transport::to_label(static_cast<transport::close_reason>(reason))] =
            c.closed[kind][reason];
    j[to_string(static_cast<closed_kind>(kind))] = std::move(reasons);
  }
  return j;
}

// The groups a status names: the largest. A cluster may hold thousands of rooms; the totals count
// them all.
constexpr std::size_t groups_shown = 32;

}  // namespace

const char* to_string(closed_kind kind) noexcept {
  switch (kind) {
    case closed_kind::host:
      return "host";
    case closed_kind::node:
      return "node";
    case closed_kind::client:
      return "client";
  }
  return "unknown";
}

// An observer may send a thousand requests in one write: answered from one build per turn, they
// cost the loop copies, not a thousand walks of every route and link (which starved a master's
// heartbeats for seconds on a loaded machine).
const std::string& router::status_text() {
  if (status_text_->empty()) {
    *status_text_ = status().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    asio::post(executor_, [text = std::weak_ptr<std::string>(status_text_)] {
      if (const auto t = text.lock()) t->clear();
    });
  }
  return *status_text_;
}

void router::send_to_watchers(const membership_event& e) {
  std::string json;
  for (auto& [ptr, c] : connections_) {
    if (c->kind != connection_kind::observer || !c->watching) continue;
    if (json.empty())
      json = to_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    send_control(*c, [&](std::vector<std::byte>& out) { wire::append_watch_event(out, json); });
  }
}

std::string router::watching_text() const {
  const std::uint64_t last = events_.recent().empty() ? 0 : events_.recent().back().seq;
  return nlohmann::json{{"event", "watching"}, {"host", settings_.self.to_string()}, {"seq", last}}
      .dump();
}

nlohmann::json router::status() const {
  auto j = own_status();
  if (callbacks_.extend_status) callbacks_.extend_status(j);
  return j;
}

// The groups as this master knows them (every known node's, local and remote): how many, and
// the largest, with their members in all and here.
nlohmann::json router::groups_status() const {
  struct tally {
    std::size_t members = 0;
    std::size_t local = 0;
  };
  std::unordered_map<std::string_view, tally> by_name;
  std::size_t memberships = 0;
  groups_.for_each([&](const node_id& node, const std::string& group) {
    auto& t = by_name[group];
    ++t.members;
    if (const route* r = routes_.find(node); r && r->local) ++t.local;
    ++memberships;
  });
  std::vector<std::pair<std::string_view, tally>> largest(by_name.begin(), by_name.end());
  const auto shown = static_cast<std::ptrdiff_t>(std::min(largest.size(), groups_shown));
  std::partial_sort(
      largest.begin(), largest.begin() + shown, largest.end(), [](const auto& a, const auto& b) {
        return a.second.members != b.second.members ? a.second.members > b.second.members
                                                    : a.first < b.first;
      });
  largest.resize(static_cast<std::size_t>(shown));
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, t] : largest)
    list.push_back({{"group", name}, {"members", t.members}, {"local", t.local}});
  return {{"count", by_name.size()}, {"memberships", memberships}, {"largest", std::move(list)}};
}

nlohmann::json router::own_status() const {
  const auto& h = health_->counters();
  const auto now = std::chrono::steady_clock::now();
  nlohmann::json nodes = nlohmann::json::array();
  std::unordered_map<host_id, nlohmann::json> remote;
  routes_.for_each([&](const node_id& id, const route& r) {
    if (r.local) {
      nlohmann::json n{{"node", id.to_string()},
                       {"pid", r.pid},
                       {"kind", r.via->spawned ? "worker" : "attached"}};
      if (r.slot != wire::no_slot) n["slot"] = r.slot;
      n["groups"] = groups_.of(id);
      add_traffic(n, *r.via);
      nodes.push_back(std::move(n));
    } else {
      auto& list = remote[r.host];
      if (list.is_null()) list = nlohmann::json::array();
      nlohmann::json n{{"node", id.to_string()}, {"pid", r.pid}};
      if (r.slot != wire::no_slot) n["slot"] = r.slot;
      list.push_back(std::move(n));
    }
  });

  nlohmann::json peers = nlohmann::json::array();
  for (const auto& [id, c] : peers_) {
    auto& nodes_there = remote[id];
    if (nodes_there.is_null()) nodes_there = nlohmann::json::array();
    nlohmann::json p{{"host", id.to_string()},
                     {"address", c->peer_address},
                     {"hostname", c->peer_hostname},
                     {"state", "linked"},
                     {"dialled_by_us", c->dialled_by_us},
                     {"authenticated", c->authenticated},
                     {"tls", c->link->stream().is_tls()},
                     {"nodes", nodes_there.size()},
                     {"remote_nodes", std::move(nodes_there)},
                     {"reported_lateness_ms", as_ms(c->link->reported_lateness(now))}};
    add_traffic(p, *c);
    // The probes' round trip (network and the peer's loop, both ways), and the kernel's estimate
    // for the TCP connection alone (inflated by delayed acknowledgements on a quiet link).
    const auto us = [](auto d) {
      return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    };
    if (const auto rtt = c->link->round_trip()) p["rtt_us"] = us(*rtt);
    if (const auto rtt = c->link->last_round_trip()) p["last_rtt_us"] = us(*rtt);
    if (const auto rtt =
            transport::tcp_round_trip(c->link->stream().lowest_layer().native_handle()))
      p["tcp_rtt_us"] = rtt->count();
    const auto w = wanted_.find(id);
    p["reconnects"] = w == wanted_.end() || w->second.links == 0 ? 0 : w->second.links - 1;
    peers.push_back(std::move(p));
  }
  for (const auto& [id, w] : wanted_) {
    if (peers_.contains(id)) continue;
    const char* state = w.stale                  ? "stale row"
                        : dialling_.contains(id) ? "dialling"
                                                 : "waiting to redial";
    peers.push_back({{"host", id.to_string()},
                     {"address", w.address},
                     {"state", state},
                     {"reconnects", w.links == 0 ? 0 : w.links - 1}});
  }

  nlohmann::json events = nlohmann::json::array();
  for (const auto& e : events_.recent()) events.push_back(to_json(e));

  return {{"host", settings_.self.to_string()},
          {"cluster", settings_.cluster},
          {"address", settings_.address},
          {"hostname", settings_.hostname},
          {"unix", settings_.unix_path},
          {"registry", settings_.registry},
          {"pid", ::getpid()},
          {"nodes", nodes},
          {"peers", peers},
          {"events", events},
          {"groups", groups_status()},
          {"security",
           {{"secret", settings_.secret.has_value()},
            {"tls", settings_.tls != nullptr},
            {"insecure", settings_.allow_insecure}}},
          {"queued_bytes", budget_->used()},
          {"connections", connections_.size()},
          {"counters",
           {{"forwarded", counters_.forwarded},
            {"dropped", counters_.dropped},
            {"refused_requests", counters_.refused_requests},
            {"unmatched_replies", counters_.unmatched_replies},
            {"slow_consumers", counters_.slow_consumers},
            {"held_back", counters_.held_back},
            {"refused_connections", counters_.refused_connections},
            {"silent_workers_killed", counters_.silent_workers_killed},
            {"silent_peers_lost", counters_.silent_peers_lost},
            {"workers_adopted", counters_.workers_adopted},
            {"requests_in_flight", ledger_.size()},
            {"refusals_sent", by_refuse_code(counters_.refusals_sent)},
            {"refusals_received", by_refuse_code(counters_.refusals_received)},
            {"closed", by_close_reason(counters_)}}},
          {"local_health",
           {{"late_ticks", h.late_ticks},
            {"stretched", h.stretched},
            {"loss_stretched", h.loss_stretched},
            {"deadlines_stretched", h.deadlines_stretched},
            {"worst_lateness_ms", as_ms(h.worst)},
            {"excess_lateness_ms", as_ms(health_->excess_lateness(now))}}}};
}

}  // namespace galaxies::router
