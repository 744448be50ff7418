#include "transport/request_id_index.hpp"

#include <bit>
#include <utility>

namespace galaxies::transport {
namespace {

// The first table holds 8 requests at half load: a node that asks one at a time never grows it.
constexpr std::size_t initial_cells = 16;

}  // namespace

std::uint32_t request_id_index::find(std::uint64_t id) const noexcept {
  if (cells_.empty() || id == 0) return npos;
  const std::size_t mask = cells_.size() - 1;
  for (std::size_t i = home(id);; i = (i + 1) & mask) {
    const cell& c = cells_[i];
    if (c.id == id) return c.slot;
    if (c.id == 0) return npos;
  }
}

void request_id_index::insert(std::uint64_t id, std::uint32_t slot) {
  // At most half full: probes stay short even when a few long-lived ids sit among fast ones.
  if (2 * (size_ + 1) > cells_.size()) grow();
  const std::size_t mask = cells_.size() - 1;
  std::size_t i = home(id);
  while (cells_[i].id != 0) i = (i + 1) & mask;
  cells_[i] = {id, slot};
  ++size_;
}

void request_id_index::erase(std::uint64_t id) noexcept {
  if (cells_.empty() || id == 0) return;
  const std::size_t mask = cells_.size() - 1;
  std::size_t hole = home(id);
  while (cells_[hole].id != id) {
    if (cells_[hole].id == 0) return;
    hole = (hole + 1) & mask;
  }
  // Backward shift: pull later members of the probe run into the hole when their home lies
  // cyclically at or before it, so that every lookup still finds its id before an empty cell.
  for (std::size_t next = (hole + 1) & mask; cells_[next].id != 0; next = (next + 1) & mask) {
    const std::size_t wanted = home(cells_[next].id);
    const bool movable = ((next - wanted) & mask) >= ((next - hole) & mask);
    if (movable) {
      cells_[hole] = cells_[next];
      hole = next;
    }
  }
  cells_[hole] = {};
  --size_;
}

void request_id_index::grow() {
  const std::size_t cells = cells_.empty() ? initial_cells : 2 * cells_.size();
  std::vector<cell> old = std::exchange(cells_, std::vector<cell>(cells));
  shift_ = 64 - static_cast<unsigned>(std::countr_zero(cells));
  size_ = 0;
  for (const cell& c : old)
    if (c.id != 0) insert(c.id, c.slot);
}

}  // namespace galaxies::transport
