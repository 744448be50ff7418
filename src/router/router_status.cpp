// What `galaxies status` shows of a master: its nodes, its links, its counters.
#include <unistd.h>

#include <asio/post.hpp>
#include <nlohmann/json.hpp>

#include "router/router.hpp"

namespace galaxies::router {

namespace {
std::int64_t as_ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}
}  // namespace

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

nlohmann::json router::status() const {
  const auto& h = health_->counters();
  const auto now = std::chrono::steady_clock::now();
  nlohmann::json nodes = nlohmann::json::array();
  std::unordered_map<host_id, std::size_t> remote_counts;
  routes_.for_each([&](const node_id& id, const route& r) {
    if (r.local)
      nodes.push_back({{"node", id.to_string()},
                       {"pid", r.pid},
                       {"kind", r.via->spawned ? "worker" : "attached"}});
    else
      ++remote_counts[r.host];
  });

  nlohmann::json peers = nlohmann::json::array();
  for (const auto& [id, c] : peers_)
    peers.push_back({{"host", id.to_string()},
                     {"address", c->peer_address},
                     {"hostname", c->peer_hostname},
                     {"state", "linked"},
                     {"dialled_by_us", c->dialled_by_us},
                     {"authenticated", c->authenticated},
                     {"tls", c->link->stream().is_tls()},
                     {"nodes", remote_counts[id]},
                     {"queued_bytes", c->link->queued_bytes()},
                     {"reported_lateness_ms", as_ms(c->link->reported_lateness(now))}});
  for (const auto& [id, w] : wanted_) {
    if (peers_.contains(id)) continue;
    const char* state = w.stale                  ? "stale row"
                        : dialling_.contains(id) ? "dialling"
                                                 : "waiting to redial";
    peers.push_back({{"host", id.to_string()}, {"address", w.address}, {"state", state}});
  }

  return {{"host", settings_.self.to_string()},
          {"cluster", settings_.cluster},
          {"address", settings_.address},
          {"hostname", settings_.hostname},
          {"unix", settings_.unix_path},
          {"registry", settings_.registry},
          {"pid", ::getpid()},
          {"nodes", nodes},
          {"peers", peers},
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
            {"requests_in_flight", ledger_.size()}}},
          {"local_health",
           {{"late_ticks", h.late_ticks},
            {"stretched", h.stretched},
            {"worst_lateness_ms", as_ms(h.worst)},
            {"excess_lateness_ms", as_ms(health_->excess_lateness(now))}}}};
}

}  // namespace galaxies::router
