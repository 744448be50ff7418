#include "room_directory.hpp"

namespace game {
namespace {

// A fixed hash (not std::hash): every process of the cluster must compute the same weights.
std::uint64_t weight(int room, const galaxies::node_id& node) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the node's bytes, then the room
  for (auto b : node.value().bytes()) h = (h ^ b) * 1099511628211ull;
  h ^= static_cast<std::uint64_t>(room);
  h += 0x9e3779b97f4a7c15ull;  // splitmix64 finaliser: spreads close room numbers apart
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

}  // namespace

galaxies::node_id owner_of(int room, const std::vector<galaxies::node_id>& view) {
  galaxies::node_id best;
  std::uint64_t best_weight = 0;
  for (const auto& node : view) {
    const auto w = weight(room, node);
    if (best.is_nil() || w > best_weight || (w == best_weight && node < best)) {
      best = node;
      best_weight = w;
    }
  }
  return best;
}

}  // namespace game
