// base::flat_map against std::unordered_map: after any sequence of insertions and erasures (by key
// or by predicate), every key present is found with its value and every key removed is gone. A
// hash that sends many keys to the same few cells makes long probe runs that wrap around the end
// of the array, where a wrong backward shift loses the keys behind a removed one.
#include "base/flat_map.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <unordered_map>

namespace galaxies::base {
namespace {

// Eight distinct hash values for every key: long runs, and some start near the array's end.
struct crowded_hash {
  std::size_t operator()(std::uint32_t key) const noexcept { return key % 8; }
};

template <class Map>
void expect_same(const Map& map, const std::unordered_map<std::uint32_t, std::uint64_t>& model,
                 std::uint32_t keys_below) {
  ASSERT_EQ(map.size(), model.size());
  for (std::uint32_t key = 0; key < keys_below; ++key) {
    const auto it = model.find(key);
    const std::uint64_t* found = map.find(key);
    if (it == model.end()) {
      ASSERT_EQ(found, nullptr) << "key " << key << " was removed";
    } else {
      ASSERT_NE(found, nullptr) << "key " << key << " was lost";
      ASSERT_EQ(*found, it->second) << "key " << key;
    }
  }
  std::size_t visited = 0;
  map.for_each([&](std::uint32_t key, std::uint64_t value) {
    ++visited;
    ASSERT_EQ(model.at(key), value);
  });
  EXPECT_EQ(visited, model.size());
}

TEST(flat_map, EmptyFindsNothingAndEraseOfAnAbsentKeyChangesNothing) {
  flat_map<std::uint32_t, std::uint64_t> map;
  EXPECT_EQ(map.find(0), nullptr);
  EXPECT_FALSE(map.erase(0));
  EXPECT_TRUE(map.empty());
  EXPECT_EQ(map.capacity(), 0u) << "an unused map allocates nothing";
}

TEST(flat_map, TryEmplaceInsertsOnceAndReturnsTheStoredValue) {
  flat_map<std::uint32_t, std::uint64_t> map;
  const auto [first, inserted] = map.try_emplace(7, 70);
  EXPECT_TRUE(inserted);
  EXPECT_EQ(*first, 70u);
  const auto [again, inserted_again] = map.try_emplace(7, 99);
  EXPECT_FALSE(inserted_again);
  EXPECT_EQ(*again, 70u) << "an existing value is kept";
  *again = 71;
  EXPECT_EQ(*map.find(7), 71u);
  EXPECT_EQ(map.size(), 1u);
}

template <class Hash>
void random_operations(unsigned seed) {
  flat_map<std::uint32_t, std::uint64_t, Hash> map;
  std::unordered_map<std::uint32_t, std::uint64_t> model;
  std::mt19937 rng(seed);
  constexpr std::uint32_t keys = 300;
  for (int step = 0; step < 20000; ++step) {
    const std::uint32_t key = rng() % keys;
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2: {
        const std::uint64_t value = rng();
        const bool inserted = map.try_emplace(key, value).second;
        ASSERT_EQ(inserted, model.emplace(key, value).second);
        break;
      }
      case 3:
        ASSERT_EQ(map.erase(key), model.erase(key) == 1);
        break;
      case 4:  // the same through find() and erase_found()
        if (const auto* found = map.find(key)) map.erase_found(found);
        ASSERT_EQ(map.find(key), nullptr);
        model.erase(key);
        break;
      case 5: {
        const std::uint32_t modulus = 2 + rng() % 13;
        const std::uint32_t rest = rng() % modulus;
        const auto removed =
            map.erase_if([&](std::uint32_t k, std::uint64_t) { return k % modulus == rest; });
        const auto expected =
            std::erase_if(model, [&](const auto& kv) { return kv.first % modulus == rest; });
        ASSERT_EQ(removed, expected);
        break;
      }
      default:
        if (auto* value = map.find(key)) {
          *value += 1;
          model.at(key) += 1;
        } else {
          ASSERT_FALSE(model.contains(key));
        }
    }
    if (step % 97 == 0) expect_same(map, model, keys);
  }
  expect_same(map, model, keys);
}

TEST(flat_map, MatchesAStandardMapUnderRandomOperationsWithAGoodHash) {
  for (unsigned seed = 1; seed <= 3; ++seed) random_operations<std::hash<std::uint32_t>>(seed);
}

TEST(flat_map, MatchesAStandardMapWhenMostKeysCollide) {
  for (unsigned seed = 1; seed <= 3; ++seed) random_operations<crowded_hash>(seed);
}

TEST(flat_map, ASteadyLoadDoesNotGrowTheTable) {
  flat_map<std::uint32_t, std::uint64_t> map;
  for (std::uint32_t i = 0; i < 64; ++i) map.try_emplace(i, i);
  const std::size_t capacity = map.capacity();
  EXPECT_GE(capacity, 128u) << "at most half full";
  // 64 live at any time, each replaced by a new key: the array is reused, never regrown.
  for (std::uint32_t i = 64; i < 100000; ++i) {
    ASSERT_TRUE(map.erase(i - 64));
    map.try_emplace(i, i);
  }
  EXPECT_EQ(map.size(), 64u);
  EXPECT_EQ(map.capacity(), capacity);
}

}  // namespace
}  // namespace galaxies::base
