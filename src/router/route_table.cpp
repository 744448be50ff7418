#include "router/route_table.hpp"

#include <algorithm>

namespace galaxies::router {

bool route_table::add(const node_id& node, const route& r) {
  return routes_.try_emplace(node, r).second;
}

std::optional<route> route_table::remove(const node_id& node) {
  const route* r = routes_.find(node);
  if (!r) return std::nullopt;
  const route removed = *r;
  routes_.erase(node);
  return removed;
}

const route* route_table::find(const node_id& node) const {
  return routes_.find(node);
}

std::vector<std::pair<node_id, route>> route_table::remove_via(const connection* via) {
  std::vector<std::pair<node_id, route>> removed;
  routes_.erase_if([&](const node_id& node, const route& r) {
    if (r.via != via) return false;
    removed.emplace_back(node, r);
    return true;
  });
  // A stable order, so that every receiver sees the same leave order.
  std::sort(removed.begin(), removed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return removed;
}

void route_table::for_each(const std::function<void(const node_id&, const route&)>& fn) const {
  routes_.for_each(fn);
}

}  // namespace galaxies::router
