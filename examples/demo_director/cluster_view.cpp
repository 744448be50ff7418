#include "cluster_view.hpp"

#include <algorithm>
#include <stdexcept>

namespace director {

namespace {
constexpr std::size_t max_workers = 1024;  // far more than any demo starts
}

worker_record& cluster_view::record_for(const std::string& id, const std::string& host_label) {
  if (auto it = by_id_.find(id); it != by_id_.end()) return workers_[it->second];
  if (workers_.capacity() < max_workers) workers_.reserve(max_workers);
  if (workers_.size() == max_workers) throw std::runtime_error("too many workers");
  worker_record w;
  w.id = id;
  w.host_label = host_label;
  w.label = host_label + std::to_string(++next_number_[host_label]);
  by_id_[id] = workers_.size();
  workers_.push_back(std::move(w));
  return workers_.back();
}

nlohmann::json cluster_view::on_line(const std::string& host_label, std::string_view line) {
  auto event = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!event.is_object() || !event.contains("ev") || !event.contains("me")) return nullptr;
  const std::string ev = event.value("ev", "");
  worker_record& w = record_for(event.value("me", ""), host_label);
  if (w.pid == 0) w.pid = event.value("pid", 0);
  const long long t = event.value("t_us", 0LL);
  const std::string node = event.value("node", "");
  const std::string host = event.value("host", "");

  if (ev == "ready") {
    w.ready = true;
    w.host_id = host;
    host_labels_[host] = host_label;
  } else if (ev == "joined") {
    ++w.joined[node];
    w.joined_t_us[node] = t;
  } else if (ev == "left") {
    ++w.left[node];
    w.left_reason[node] = event.value("reason", "");
    w.left_t_us[node] = t;
  } else if (ev == "host_joined") {
    ++w.hosts_joined[host];
    host_addresses_[host] = event.value("address", "");
  } else if (ev == "host_left") {
    w.hosts_left[host] = event.value("reason", "");
    w.host_left_t_us[host] = t;
  } else if (ev == "stats") {
    w.stats = event;
    w.stats_t_us = t;
  } else if (ev == "disconnected") {
    w.disconnected = true;
  } else if (ev == "trade_offer") {
    trade& tr = trades_[w.id + "/" + std::to_string(event.value("offer", 0))];
    tr.from = w.id;
    tr.to = event.value("to", "");
  } else if (ev == "request") {
    if (event.value("kind", "") == "trade") {
      trade& tr = trades_[w.id + "/" + std::to_string(event.value("offer", 0))];
      tr.done = true;
      tr.done_t_us = t;
      if (event.value("stopping", false))
        tr.outcome = "cancelled by the offering worker's stop";
      else if (event.contains("error"))
        tr.outcome = event.value("error", "");
      else
        tr.outcome = event.value("answer", nlohmann::json::object()).value("accepted", false)
                         ? "accepted"
                         : "declined";
    }
    // A request ended by the requester's own stop says nothing about the cluster.
    if (!event.value("stopping", false))
      requests_.push_back({event.value("kind", ""), event.value("to", ""),
                           event.value("rtt_us", 0LL), t, event.value("error", "")});
  } else if (ev == "room_join" && !event.value("local", false)) {
    requests_.push_back({"join", event.value("host", ""), event.value("rtt_us", 0LL), t, ""});
  } else if (ev == "anomaly") {
    anomalies_.push_back(w.label + ": " + event.value("what", "") + " (" +
                         label(event.value("from", "")) + ")");
  }
  return event;
}

worker_record* cluster_view::find(const std::string& node_id) {
  auto it = by_id_.find(node_id);
  return it == by_id_.end() ? nullptr : &workers_[it->second];
}

std::string cluster_view::label(const std::string& node_id) const {
  auto it = by_id_.find(node_id);
  return it == by_id_.end() ? node_id.substr(0, 8) : workers_[it->second].label;
}

std::vector<worker_record*> cluster_view::workers() {
  std::vector<worker_record*> out;
  for (auto& w : workers_) out.push_back(&w);
  return out;
}

std::vector<worker_record*> cluster_view::alive() {
  std::vector<worker_record*> out;
  for (auto& w : workers_)
    if (w.expected_alive) out.push_back(&w);
  return out;
}

std::vector<worker_record*> cluster_view::of_host(const std::string& host_label) {
  std::vector<worker_record*> out;
  for (auto& w : workers_)
    if (w.host_label == host_label) out.push_back(&w);
  return out;
}

std::string cluster_view::host_label_of(const std::string& host_id) const {
  auto it = host_labels_.find(host_id);
  return it == host_labels_.end() ? host_id.substr(0, 8) : it->second;
}

std::string cluster_view::address_of(const std::string& host_id) const {
  auto it = host_addresses_.find(host_id);
  return it == host_addresses_.end() ? "?" : it->second;
}

std::uint64_t cluster_view::total(const std::string& counter) const {
  std::uint64_t sum = 0;
  for (const auto& w : workers_)
    if (w.stats.is_object()) sum += w.stats.value(counter, std::uint64_t{0});
  return sum;
}

double percentile_ms(const std::vector<request_sample>& samples, double p, long long since_us) {
  std::vector<long long> rtts;
  for (const auto& s : samples)
    if (s.error.empty() && s.t_us >= since_us && s.kind != "trade") rtts.push_back(s.rtt_us);
  if (rtts.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(rtts.size() - 1) + 0.5);
  std::nth_element(rtts.begin(), rtts.begin() + static_cast<std::ptrdiff_t>(k), rtts.end());
  return static_cast<double>(rtts[k]) / 1000.0;
}

}  // namespace director
