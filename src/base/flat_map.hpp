// A hash map in one flat array, for the tables a master consults on every frame: open addressing
// with linear probing, at most half full, deletion by backward shift (so no tombstones pile up and
// lookups stay short however many entries came and went). The hash's value is mixed by Fibonacci
// hashing before it picks a cell, so a weak hash (consecutive ids) still spreads. It allocates only
// when it grows past its high-water mark and never shrinks: a steady load costs no allocation, and
// its owners bound how many entries it can hold.
//
// Keys and values are copied into cells (they must be default-constructible and cheap to copy).
// A pointer from find() or try_emplace() is valid until the next insertion or erasure. Iteration
// order is unspecified; erase_if is the way to remove while visiting.
// Threading: none; its owner's.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace galaxies::base {

template <class Key, class Value, class Hash = std::hash<Key>>
class flat_map {
 public:
  Value* find(const Key& key) noexcept {
    const std::size_t i = index_of(key);
    return i == npos ? nullptr : &cells_[i].value;
  }
  const Value* find(const Key& key) const noexcept {
    const std::size_t i = index_of(key);
    return i == npos ? nullptr : &cells_[i].value;
  }
  bool contains(const Key& key) const noexcept { return index_of(key) != npos; }

  // The value of `key`, inserted as `value` when absent; second: whether it was inserted.
  std::pair<Value*, bool> try_emplace(const Key& key, const Value& value = Value{}) {
    if (const std::size_t i = index_of(key); i != npos) return {&cells_[i].value, false};
    if (2 * (size_ + 1) > cells_.size()) grow();
    cell& c = cells_[free_cell_for(key)];
    c = {key, value, true};
    ++size_;
    return {&c.value, true};
  }

  // True when `key` was there.
  bool erase(const Key& key) noexcept {
    const std::size_t i = index_of(key);
    if (i == npos) return false;
    remove_at(i);
    return true;
  }

  // Erases the entry `found` belongs to: a pointer find() or try_emplace() returned, with no
  // insertion or erasure since. Saves erase(key)'s second lookup after a find.
  void erase_found(const Value* found) noexcept {
    const auto offset =
        reinterpret_cast<const char*>(found) - reinterpret_cast<const char*>(&cells_.front().value);
    remove_at(static_cast<std::size_t>(offset) / sizeof(cell));
  }

  // Removes every entry for which pred(key, value) holds; returns how many.
  template <class Pred>
  std::size_t erase_if(Pred pred) {
    std::size_t removed = 0;
    for (std::size_t i = 0; i < cells_.size();) {
      if (cells_[i].used && pred(std::as_const(cells_[i].key), std::as_const(cells_[i].value))) {
        remove_at(i);  // may pull a later entry into cell i: look at it again
        ++removed;
      } else {
        ++i;
      }
    }
    return removed;
  }

  // f(key, value) for every entry.
  template <class F>
  void for_each(F f) const {
    for (const cell& c : cells_)
      if (c.used) f(c.key, c.value);
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return cells_.size(); }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  // A table of this many cells holds 8 entries: an owner with one at a time never grows it.
  static constexpr std::size_t initial_cells = 16;

  struct cell {
    Key key{};
    Value value{};
    bool used = false;
  };

  // Only with cells: shift_ is 64 while there are none.
  std::size_t home(const Key& key) const noexcept {
    return static_cast<std::size_t>(
        (static_cast<std::uint64_t>(hash_(key)) * 0x9e3779b97f4a7c15ull) >> shift_);
  }

  std::size_t index_of(const Key& key) const noexcept {
    if (size_ == 0) return npos;
    const std::size_t mask = cells_.size() - 1;
    for (std::size_t i = home(key);; i = (i + 1) & mask) {
      const cell& c = cells_[i];
      if (!c.used) return npos;
      if (c.key == key) return i;
    }
  }

  std::size_t free_cell_for(const Key& key) const noexcept {
    const std::size_t mask = cells_.size() - 1;
    std::size_t i = home(key);
    while (cells_[i].used) i = (i + 1) & mask;
    return i;
  }

  // Backward shift: pulls later members of the probe run into the hole when their home lies
  // cyclically at or before it, so that every lookup still finds its key before an empty cell.
  void remove_at(std::size_t hole) noexcept {
    const std::size_t mask = cells_.size() - 1;
    for (std::size_t next = (hole + 1) & mask; cells_[next].used; next = (next + 1) & mask) {
      const std::size_t wanted = home(cells_[next].key);
      if (((next - wanted) & mask) >= ((next - hole) & mask)) {
        cells_[hole] = cells_[next];
        hole = next;
      }
    }
    cells_[hole] = cell{};
    --size_;
  }

  void grow() {
    const std::size_t cells = cells_.empty() ? initial_cells : 2 * cells_.size();
    std::vector<cell> old = std::exchange(cells_, std::vector<cell>(cells));
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(cells));
    for (const cell& c : old)
      if (c.used) cells_[free_cell_for(c.key)] = c;
  }

  std::vector<cell> cells_;  // a power of two in size, at most half full
  std::size_t size_ = 0;
  unsigned shift_ = 64;
  [[no_unique_address]] Hash hash_{};
};

}  // namespace galaxies::base
