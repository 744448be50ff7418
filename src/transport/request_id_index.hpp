// Request id -> slot of the pending table, in a base::flat_map: it allocates only when it grows
// past its high-water mark, never per request, so a node asking one request at a time, or a steady
// thousand, reuses the same array.
// Ids are never 0. Threading: none; its owner's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/flat_map.hpp"

namespace galaxies::transport {

class request_id_index {
 public:
  static constexpr std::uint32_t npos = UINT32_MAX;

  // The slot of `id`, or npos.
  std::uint32_t find(std::uint64_t id) const noexcept {
    const std::uint32_t* slot = map_.find(id);
    return slot ? *slot : npos;
  }
  // Adds `id` (not present, not 0) at `slot`. May allocate (growth only).
  void insert(std::uint64_t id, std::uint32_t slot) { map_.try_emplace(id, slot); }
  // Removes `id`; nothing if absent.
  void erase(std::uint64_t id) noexcept { map_.erase(id); }

  std::size_t size() const noexcept { return map_.size(); }
  std::size_t capacity() const noexcept { return map_.capacity(); }

 private:
  // The flat map mixes the value (Fibonacci hashing): consecutive ids land far apart.
  struct as_is {
    std::size_t operator()(std::uint64_t id) const noexcept { return id; }
  };
  base::flat_map<std::uint64_t, std::uint32_t, as_is> map_;
};

}  // namespace galaxies::transport
