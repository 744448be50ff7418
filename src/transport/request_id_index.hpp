// Request id -> slot of the pending table: a flat open-addressing table (linear probing, deletion
// by backward shift, so no tombstones pile up) of (id, slot) pairs. It allocates only when it grows
// past its high-water mark, never per request: a node asking one request at a time, or a steady
// thousand, reuses the same array.
// Ids are never 0 (0 marks an empty cell). Threading: none; its owner's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace galaxies::transport {

class request_id_index {
 public:
  static constexpr std::uint32_t npos = UINT32_MAX;

  // The slot of `id`, or npos.
  std::uint32_t find(std::uint64_t id) const noexcept;
  // Adds `id` (not present, not 0) at `slot`. May allocate (growth only).
  void insert(std::uint64_t id, std::uint32_t slot);
  // Removes `id`; nothing if absent.
  void erase(std::uint64_t id) noexcept;

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cells_.size(); }

 private:
  struct cell {
    std::uint64_t id = 0;  // 0: empty
    std::uint32_t slot = npos;
  };

  // Fibonacci hashing: consecutive ids (the common case) land far apart, whatever the capacity.
  std::size_t home(std::uint64_t id) const noexcept {
    return static_cast<std::size_t>((id * 0x9e3779b97f4a7c15ull) >> shift_);
  }
  void grow();

  std::vector<cell> cells_;  // a power of two in size, at most half full
  std::size_t size_ = 0;
  unsigned shift_ = 64;
};

}  // namespace galaxies::transport
