// The master's ledger of forwarded requests: replies match once, from the node asked, on the
// connection the request went to; entries go at their deadline or when a node leaves; bounded.
#include "router/request_ledger.hpp"

#include <gtest/gtest.h>

namespace galaxies::router {
namespace {

using namespace std::chrono_literals;
using clock = request_ledger::clock;

const node_id a(uuid({1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
const node_id b(uuid({1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}));
const node_id c(uuid({1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}));
const int link_one = 0;
const int link_two = 0;
const void* const via = &link_one;
const void* const other_via = &link_two;

TEST(RequestLedger, AReplyMatchesOnceFromTheNodeAskedOnItsConnection) {
  request_ledger ledger(10, 100);
  const auto now = clock::now();
  ASSERT_EQ(ledger.add(a, 1, b, via, 1000ms, now), request_ledger::add_result::added);
  EXPECT_FALSE(ledger.answer(a, 1, c, via)) << "another node";
  EXPECT_FALSE(ledger.answer(a, 1, b, other_via)) << "another connection";
  EXPECT_FALSE(ledger.answer(b, 1, a, via)) << "the other way round";
  EXPECT_FALSE(ledger.answer(a, 2, b, via)) << "another id";
  EXPECT_TRUE(ledger.answer(a, 1, b, via));
  EXPECT_FALSE(ledger.answer(a, 1, b, via)) << "a second answer";
  EXPECT_EQ(ledger.size(), 0u);
}

TEST(RequestLedger, AnIdInFlightCannotBeAddedTwice) {
  request_ledger ledger(10, 100);
  const auto now = clock::now();
  ASSERT_EQ(ledger.add(a, 1, b, via, 1000ms, now), request_ledger::add_result::added);
  EXPECT_EQ(ledger.add(a, 1, c, via, 1000ms, now), request_ledger::add_result::duplicate);
  EXPECT_EQ(ledger.of_node(a), 1u);
  ledger.cancel(a, 1);
  EXPECT_EQ(ledger.of_node(a), 0u);
  EXPECT_FALSE(ledger.answer(a, 1, b, via));
}

TEST(RequestLedger, BoundedPerRequesterAndInTotal) {
  request_ledger ledger(2, 3);
  const auto now = clock::now();
  EXPECT_EQ(ledger.add(a, 1, b, via, 1s, now), request_ledger::add_result::added);
  EXPECT_EQ(ledger.add(a, 2, b, via, 1s, now), request_ledger::add_result::added);
  EXPECT_EQ(ledger.add(a, 3, b, via, 1s, now), request_ledger::add_result::over_node_limit);
  EXPECT_EQ(ledger.add(b, 1, a, via, 1s, now), request_ledger::add_result::added);
  EXPECT_EQ(ledger.add(c, 1, a, via, 1s, now), request_ledger::add_result::over_total_limit);
  ASSERT_TRUE(ledger.answer(a, 1, b, via));
  EXPECT_EQ(ledger.add(a, 3, b, via, 1s, now), request_ledger::add_result::added);
}

TEST(RequestLedger, EntriesExpireAtTheirDeadlineRoundedUp) {
  request_ledger ledger(10, 100);
  const auto now = clock::now();
  ledger.add(a, 1, b, via, 100ms, now);   // kept up to 128 ms
  ledger.add(a, 2, b, via, 1000ms, now);  // kept up to 1024 ms
  ledger.expire(now + 99ms);
  EXPECT_EQ(ledger.size(), 2u) << "never before its deadline";
  ledger.expire(now + 200ms);
  EXPECT_EQ(ledger.size(), 1u);
  EXPECT_FALSE(ledger.answer(a, 1, b, via)) << "late";
  ledger.expire(now + 2s);
  EXPECT_EQ(ledger.size(), 0u);
  EXPECT_EQ(ledger.of_node(a), 0u);
}

TEST(RequestLedger, NodesThatLeaveTakeTheirEntriesEitherWay) {
  request_ledger ledger(10, 100);
  const auto now = clock::now();
  ledger.add(a, 1, b, via, 1s, now);
  ledger.add(b, 1, c, via, 1s, now);
  ledger.add(c, 1, a, via, 1s, now);
  ledger.forget({b});
  EXPECT_EQ(ledger.size(), 1u);
  EXPECT_TRUE(ledger.answer(c, 1, a, via));
}

TEST(RequestLedger, AnsweredEntriesLeaveNoUnboundedTrail) {
  request_ledger ledger(10, 100);
  auto now = clock::now();
  // A long timeout, answered at once, a million times: the deadline index must not grow with it.
  for (std::uint64_t id = 1; id <= 1000000; ++id) {
    ASSERT_EQ(ledger.add(a, id, b, via, 3600s, now), request_ledger::add_result::added);
    ASSERT_TRUE(ledger.answer(a, id, b, via));
  }
  EXPECT_EQ(ledger.size(), 0u);
  EXPECT_LE(ledger.tracked_deadlines(), 2048u);
}

}  // namespace
}  // namespace galaxies::router
