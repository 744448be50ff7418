#include "router/membership_log.hpp"

#include <chrono>
#include <nlohmann/json.hpp>

#include "base/wait_status.hpp"

namespace galaxies::router {
namespace {

const char* name_of(membership_event::kind k) {
  switch (k) {
    case membership_event::kind::node_joined:
      return "node_joined";
    case membership_event::kind::node_left:
      return "node_left";
    case membership_event::kind::host_joined:
      return "host_joined";
    case membership_event::kind::host_left:
      return "host_left";
  }
  return "unknown";
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

nlohmann::json to_json(const membership_event& e) {
  nlohmann::json j{{"seq", e.seq},
                   {"time_ms", e.time_ms},
                   {"event", name_of(e.what)},
                   {"host", e.host.to_string()}};
  const bool node =
      e.what == membership_event::kind::node_joined || e.what == membership_event::kind::node_left;
  if (node) {
    j["node"] = e.node.to_string();
    j["pid"] = e.pid;
    if (e.slot != wire::no_slot) j["slot"] = e.slot;
  }
  if (e.what == membership_event::kind::node_left || e.what == membership_event::kind::host_left)
    j["reason"] = std::string(to_string(e.reason));
  if (e.what == membership_event::kind::node_left && e.reason == leave_reason::exited)
    j["exit"] = base::describe_wait_status(e.detail);
  return j;
}

void membership_log::node_joined(const node_id& node, const host_id& host, std::uint32_t pid,
                                 std::uint32_t slot) {
  live_[node] = {host, pid, slot};
  membership_event e;
  e.what = membership_event::kind::node_joined;
  e.node = node;
  e.host = host;
  e.pid = pid;
  e.slot = slot;
  record(e);
}

void membership_log::node_left(const node_id& node, leave_reason reason, int detail) {
  membership_event e;
  e.what = membership_event::kind::node_left;
  e.node = node;
  e.reason = reason;
  e.detail = detail;
  if (const auto it = live_.find(node); it != live_.end()) {
    e.host = it->second.host;
    e.pid = it->second.pid;
    e.slot = it->second.slot;
    live_.erase(it);
  }
  record(e);
}

void membership_log::host_joined(const host_id& host) {
  membership_event e;
  e.what = membership_event::kind::host_joined;
  e.host = host;
  record(e);
}

void membership_log::host_left(const host_id& host, leave_reason reason) {
  membership_event e;
  e.what = membership_event::kind::host_left;
  e.host = host;
  e.reason = reason;
  record(e);
}

void membership_log::record(membership_event e) {
  e.seq = next_seq_++;
  e.time_ms = wall_ms();
  if (keep_ > 0) {
    if (recent_.size() == keep_) recent_.pop_front();
    recent_.push_back(e);
  }
  if (on_event) on_event(e);
}

}  // namespace galaxies::router
