// unique_function: what users hand to request() and async_send(). Small callables live inside it
// (a request's completion is on the hot path; allocation_free_test.cpp counts that it allocates
// nothing), larger or throwing-move ones on the heap; either way every callable is called with its
// arguments, moved along, and destroyed exactly once.
#include "galaxies/unique_function.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <string>
#include <system_error>
#include <vector>
namespace galaxies::detail {
namespace {

using callback = unique_function<void(std::error_code, std::vector<int>)>;

// Counts live copies, so that a test sees every callable destroyed exactly once.
struct tracked {
  explicit tracked(int* live) : live(live) { ++*live; }
  tracked(tracked&& other) noexcept : live(other.live) { ++*live; }
  tracked(const tracked&) = delete;
  ~tracked() { --*live; }
  int* live;
};

// A callable whose move may throw: kept on the heap, where moving the function moves a pointer.
struct throwing_move {
  throwing_move() = default;
  throwing_move(throwing_move&&) noexcept(false) {}
  int operator()(int x) { return x + 1; }
};

TEST(unique_function, SmallCallablesKeepTheirStateThroughMoves) {
  int calls = 0;
  std::vector<int> seen;
  auto shared = std::make_shared<int>(7);
  // Captures like a request's completion: a few references and a shared_ptr.
  auto lambda = [&calls, &seen, shared, extra = 3](std::error_code ec, std::vector<int> v) {
    calls += ec ? 100 : 1;
    seen = std::move(v);
    seen.push_back(*shared + extra);
  };
  static_assert(callback::fits_inline<decltype(lambda)>);
  callback f = lambda;
  callback g = std::move(f);
  callback h;
  h = std::move(g);
  EXPECT_FALSE(f);
  EXPECT_FALSE(g);
  ASSERT_TRUE(h);
  h({}, {1, 2});
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 10}));
  EXPECT_EQ(shared.use_count(), 3) << "ours, the lambda's, and the copy inside h";
}

TEST(unique_function, LargeAndMoveOnlyCallablesWork) {
  std::array<char, 200> big{};
  big[199] = 'z';
  auto owned = std::make_unique<std::string>("owned");
  std::string out;
  auto lambda = [big, owned = std::move(owned), &out](std::error_code, std::vector<int>) {
    out = *owned + big[199];
  };
  static_assert(!callback::fits_inline<decltype(lambda)>);
  callback f = std::move(lambda);
  callback g = std::move(f);
  EXPECT_FALSE(f);
  g({}, {});
  EXPECT_EQ(out, "ownedz");

  static_assert(!unique_function<int(int)>::fits_inline<throwing_move>);
  unique_function<int(int)> t = throwing_move{};
  unique_function<int(int)> u = std::move(t);
  EXPECT_EQ(u(1), 2);
}

TEST(unique_function, EveryCallableIsDestroyedExactlyOnce) {
  int live = 0;
  {
    // Inline, then on the heap (a big capture beside the tracked one).
    callback small = [t = tracked(&live)](std::error_code, std::vector<int>) {};
    callback large = [t = tracked(&live), pad = std::array<char, 256>{}](std::error_code,
                                                                         std::vector<int>) {};
    EXPECT_EQ(live, 2);
    callback moved = std::move(small);
    EXPECT_EQ(live, 2) << "a move relocates, it does not copy";
    moved = std::move(large);  // the inline one is destroyed, the heap one taken over
    EXPECT_EQ(live, 1);
    moved = callback{};
    EXPECT_EQ(live, 0);
    callback again = [t = tracked(&live)](std::error_code, std::vector<int>) {};
    again = std::move(again);  // self-move keeps it
    EXPECT_EQ(live, 1);
    EXPECT_TRUE(again);
  }
  EXPECT_EQ(live, 0);
}

}  // namespace
}  // namespace galaxies::detail
