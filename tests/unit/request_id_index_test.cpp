// The pending table's id -> slot index: every id present is found with its slot, every id removed
// is gone, whatever the order of removals (deletion shifts probe runs back; a wrong shift loses
// ids that sit behind the removed one), across growth; compared with std::unordered_map.
#include "transport/request_id_index.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace galaxies::transport {
namespace {

constexpr auto npos = request_id_index::npos;

void expect_same(const request_id_index& index,
                 const std::unordered_map<std::uint64_t, std::uint32_t>& model,
                 std::uint64_t ids_below) {
  ASSERT_EQ(index.size(), model.size());
  for (std::uint64_t id = 1; id < ids_below; ++id) {
    const auto it = model.find(id);
    ASSERT_EQ(index.find(id), it == model.end() ? npos : it->second) << "id " << id;
  }
}

TEST(request_id_index, EmptyFindsNothingAndZeroIsNeverAnId) {
  request_id_index index;
  EXPECT_EQ(index.find(0), npos);
  EXPECT_EQ(index.find(1), npos);
  index.erase(1);  // absent: nothing happens
  index.insert(1, 7);
  EXPECT_EQ(index.find(0), npos);
  EXPECT_EQ(index.find(1), 7u);
  EXPECT_EQ(index.find(2), npos);
  index.erase(1);
  EXPECT_EQ(index.find(1), npos);
  EXPECT_EQ(index.size(), 0u);
}

// Ids issued in order, removed in random order, with a few kept for long (as a slow request sits
// among fast ones): the pending table's own pattern.
TEST(request_id_index, MatchesAMapUnderRandomRemovalAndGrowth) {
  std::mt19937_64 random(8);
  request_id_index index;
  std::unordered_map<std::uint64_t, std::uint32_t> model;
  std::vector<std::uint64_t> live;
  std::uint64_t next = 1;
  for (int step = 0; step < 20000; ++step) {
    // Grows to a few hundred live ids, then drains, then grows again.
    const bool grow_phase = (step / 2000) % 2 == 0;
    const bool add = live.empty() || (random() % 100) < (grow_phase ? 70u : 30u);
    if (add) {
      const auto slot = static_cast<std::uint32_t>(random() % 100000);
      index.insert(next, slot);
      model[next] = slot;
      live.push_back(next++);
    } else {
      const std::size_t pick = random() % live.size();
      const std::uint64_t id = live[pick];
      live[pick] = live.back();
      live.pop_back();
      index.erase(id);
      model.erase(id);
      index.erase(id);  // twice: nothing more happens
    }
    // Every step while the table is small (collisions are common at 16 or 32 cells), then now
    // and then.
    if (step < 3000 || step % 997 == 0) expect_same(index, model, next);
  }
  expect_same(index, model, next);
}

}  // namespace
}  // namespace galaxies::transport
