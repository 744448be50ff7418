// Which connection leads to each live node: the master's forwarding table, consulted up to twice
// per frame (the sender's route checked, the receiver's found). Pure data; the router owns the
// connections it points to. A route from find() is valid until the next add or remove.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "base/flat_map.hpp"
#include "galaxies/ids.hpp"
#include "wire/control.hpp"

namespace galaxies::router {

class connection;

struct route {
  connection* via = nullptr;  // the local node's session, or the link to its host
  host_id host;
  std::uint32_t pid = 0;
  bool local = false;
  std::uint32_t slot = wire::no_slot;  // the worker slot it fills on `host`
};

class route_table {
 public:
  // False (and no change) when the node is already known.
  bool add(const node_id& node, const route& r);
  // The route the node had, if any; removed.
  std::optional<route> remove(const node_id& node);
  const route* find(const node_id& node) const;
  // Removes and returns every node reached through `via` (a host link that closed).
  std::vector<std::pair<node_id, route>> remove_via(const connection* via);

  std::size_t size() const noexcept { return routes_.size(); }
  void for_each(const std::function<void(const node_id&, const route&)>& fn) const;

 private:
  base::flat_map<node_id, route> routes_;
};

}  // namespace galaxies::router
