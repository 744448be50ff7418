// The groups each known node is in (docs/protocol.md §5.1), as its announcements said: what a
// master tells a new peer or a new node in its snapshots. Bounded by its owner: it adds a node's
// group only within limits_options::max_groups_per_node, and only for a node in the route table.
// Routing never consults it: a publish names its receivers. Pure data; the router's thread.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "galaxies/ids.hpp"

namespace galaxies::router {

class group_table {
 public:
  enum class join_result { joined, already, full };
  // `max_groups`: how many groups `node` may be in at a time.
  join_result join(const node_id& node, std::string_view group, std::size_t max_groups);
  // False when `node` was not in `group`.
  bool leave(const node_id& node, std::string_view group);
  // Every group of `node` (which leaves them all: it left the cluster).
  std::vector<std::string> drop(const node_id& node);

  std::size_t groups_of(const node_id& node) const;
  // `node`'s groups in the order it joined them (empty when none).
  const std::vector<std::string>& of(const node_id& node) const;
  std::size_t nodes() const noexcept { return groups_.size(); }
  void for_each(const std::function<void(const node_id&, const std::string& group)>& fn) const;

 private:
  // A node's groups in the order it joined them: at most max_groups, so a scan is cheap.
  std::unordered_map<node_id, std::vector<std::string>> groups_;
};

}  // namespace galaxies::router
