// Which worker hosts room r: rendezvous (highest random weight) hashing over the live nodes.
// Every worker computes it from its own view of the cluster, with no coordinator: once the views
// agree (nodeJoined/nodeLeft), so do the owners, and when a node leaves only its own rooms move.
#pragma once

#include <cstdint>
#include <vector>

#include "galaxies/ids.hpp"

namespace game {

// `view`: every live node, this one included. Nil only when the view is empty.
galaxies::node_id owner_of(int room, const std::vector<galaxies::node_id>& view);

}  // namespace game
