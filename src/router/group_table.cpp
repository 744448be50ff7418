#include "router/group_table.hpp"

#include <algorithm>

namespace galaxies::router {

group_table::join_result group_table::join(const node_id& node, std::string_view group,
                                           std::size_t max_groups) {
  auto& groups = groups_[node];
  if (std::find(groups.begin(), groups.end(), group) != groups.end()) return join_result::already;
  if (groups.size() >= max_groups) {
    if (groups.empty()) groups_.erase(node);
    return join_result::full;
  }
  groups.emplace_back(group);
  return join_result::joined;
}

bool group_table::leave(const node_id& node, std::string_view group) {
  const auto it = groups_.find(node);
  if (it == groups_.end()) return false;
  auto& groups = it->second;
  const auto at = std::find(groups.begin(), groups.end(), group);
  if (at == groups.end()) return false;
  groups.erase(at);
  if (groups.empty()) groups_.erase(it);
  return true;
}

std::vector<std::string> group_table::drop(const node_id& node) {
  const auto it = groups_.find(node);
  if (it == groups_.end()) return {};
  auto groups = std::move(it->second);
  groups_.erase(it);
  return groups;
}

std::size_t group_table::groups_of(const node_id& node) const {
  const auto it = groups_.find(node);
  return it == groups_.end() ? 0 : it->second.size();
}

const std::vector<std::string>& group_table::of(const node_id& node) const {
  static const std::vector<std::string> none;
  const auto it = groups_.find(node);
  return it == groups_.end() ? none : it->second;
}

void group_table::for_each(
    const std::function<void(const node_id&, const std::string& group)>& fn) const {
  for (const auto& [node, groups] : groups_)
    for (const auto& g : groups) fn(node, g);
}

}  // namespace galaxies::router
