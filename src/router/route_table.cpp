#include "router/route_table.hpp"

#include <algorithm>

namespace galaxies::router {

bool route_table::add(const node_id& node, const route& r) {
  return routes_.try_emplace(node, r).second;
}

std::optional<route> route_table::remove(const node_id& node) {
  auto it = routes_.find(node);
  if (it == routes_.end()) return std::nullopt;
  route r = it->second;
  routes_.erase(it);
  return r;
}

const route* route_table::find(const node_id& node) const {
  auto it = routes_.find(node);
  return it == routes_.end() ? nullptr : &it->second;
}

std::vector<std::pair<node_id, route>> route_table::remove_via(const connection* via) {
  std::vector<std::pair<node_id, route>> removed;
  for (auto it = routes_.begin(); it != routes_.end();) {
    if (it->second.via == via) {
      removed.emplace_back(it->first, it->second);
      it = routes_.erase(it);
    } else {
      ++it;
    }
  }
  // A stable order, so that every receiver sees the same leave order.
  std::sort(removed.begin(), removed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return removed;
}

void route_table::for_each(const std::function<void(const node_id&, const route&)>& fn) const {
  for (const auto& [node, r] : routes_) fn(node, r);
}

}  // namespace galaxies::router
