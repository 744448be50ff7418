// The membership events a master has seen (nodes and hosts joining and leaving), kept for the
// status (the web view's "recent events") and handed to observers watching as they happen
// (`galaxies events`). The same events its nodes get, in the same order.
// Threading: the router's executor.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <unordered_map>

#include "galaxies/error.hpp"
#include "galaxies/ids.hpp"
#include "wire/control.hpp"

namespace galaxies::router {

struct membership_event {
  enum class kind : std::uint8_t { node_joined, node_left, host_joined, host_left };
  std::uint64_t seq = 0;  // 1, 2, ... in the order seen, per master
  std::int64_t time_ms = 0;
  kind what = kind::node_joined;
  host_id host;
  node_id node;                                      // node events
  std::uint32_t pid = 0;                             // node events
  std::uint32_t slot = wire::no_slot;                // node events: its worker slot, if any
  leave_reason reason = leave_reason::disconnected;  // left events
  int detail = 0;  // node_left for exited: the wait status (-1 unknown)
};

nlohmann::json to_json(const membership_event& e);

class membership_log {
 public:
  explicit membership_log(std::size_t keep) : keep_(keep) {}

  void node_joined(const node_id& node, const host_id& host, std::uint32_t pid, std::uint32_t slot);
  void node_left(const node_id& node, leave_reason reason, int detail);
  void host_joined(const host_id& host);
  void host_left(const host_id& host, leave_reason reason);

  // The last `keep` events, oldest first.
  const std::deque<membership_event>& recent() const noexcept { return recent_; }
  // Called with every event as it is recorded.
  std::function<void(const membership_event&)> on_event;

 private:
  void record(membership_event e);

  std::size_t keep_;
  std::deque<membership_event> recent_;
  std::uint64_t next_seq_ = 1;
  // Where a live node runs, for its node_left (a nodes_down entry names the node alone).
  struct whereabouts {
    host_id host;
    std::uint32_t pid = 0;
    std::uint32_t slot = wire::no_slot;
  };
  std::unordered_map<node_id, whereabouts> live_;
};

}  // namespace galaxies::router
