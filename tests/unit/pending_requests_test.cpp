// The requester's table: ids, exactly-once completion, timeouts in deadline order, failing one
// target's requests or all of them, the size limit. Timeouts run on a real io_context with short
// deadlines; waits are bounded and nothing sleeps. Slots are reused: a late reply for an old id
// must not reach a new request. (That a warm table allocates nothing is in
// allocation_free_test.cpp.)
#include "worker/pending_requests.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "support/eventually.hpp"

namespace galaxies::detail {
namespace {

using namespace std::chrono_literals;
using clock = pending_requests::clock;

const node_id node_a(uuid({0xa1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
const node_id node_b(uuid({0xb2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}));

// Every completion, in the order they happened, across all requests of a test.
struct completion_log {
  struct entry {
    int tag;
    std::error_code error;
    bytes reply;
    clock::time_point at;
  };
  std::vector<entry> entries;

  request_callback callback(int tag) {
    return [this, tag](std::error_code error, byte_view reply) {
      entries.push_back({tag, error, bytes(reply.begin(), reply.end()), clock::now()});
    };
  }
  std::vector<int> tags() const {
    std::vector<int> out;
    for (const auto& e : entries) out.push_back(e.tag);
    return out;
  }
  int count(int tag) const {
    int n = 0;
    for (const auto& e : entries) n += e.tag == tag;
    return n;
  }
};

class pending_requests_test : public ::testing::Test {
 protected:
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    return galaxies::test::run_until(io_, done, limit);
  }

  // Runs the io_context for `period`: a window in which a wrong timeout would have fired.
  void run_for(clock::duration period) {
    asio::steady_timer timer(io_, period);
    bool fired = false;
    timer.async_wait([&](std::error_code) { fired = true; });
    ASSERT_TRUE(run_until([&] { return fired; }, 10s));
  }

  std::uint64_t add(pending_requests& table, const node_id& target, clock::time_point deadline,
                    int tag) {
    request_callback done = log_.callback(tag);
    return table.add(target, clock::now(), deadline, done);
  }

  asio::io_context io_;
  completion_log log_;
  const clock::time_point far_ = clock::now() + 1h;
};

TEST_F(pending_requests_test, IdsStartAtOneAndAreNeverReused) {
  pending_requests table(io_.get_executor(), 100);
  EXPECT_EQ(add(table, node_a, far_, 1), 1u);
  EXPECT_EQ(add(table, node_a, far_, 2), 2u);
  EXPECT_EQ(add(table, node_b, far_, 3), 3u);

  // However the earlier ones ended, a new request never gets an old id.
  ASSERT_TRUE(table.complete(3, {}, {}));
  std::uint64_t last = 3;
  const auto next = [&] {
    const auto id = add(table, node_a, far_, 0);
    EXPECT_GT(id, last);
    last = id;
    return id;
  };
  next();
  table.take(1);
  next();
  table.fail_target(node_a, make_error_code(errc::node_left));
  next();
  table.fail_all(make_error_code(errc::shutting_down));
  const auto after_all = next();
  EXPECT_EQ(after_all, 7u);
  EXPECT_EQ(table.size(), 1u);
}

TEST_F(pending_requests_test, CompletesExactlyOnceAndALateReplyIsRefused) {
  pending_requests table(io_.get_executor(), 100);
  const auto id = add(table, node_a, far_, 1);
  const auto other = add(table, node_a, far_, 2);

  const bytes answer{std::byte{1}, std::byte{2}, std::byte{3}};
  EXPECT_TRUE(table.complete(id, {}, answer));
  ASSERT_EQ(log_.entries.size(), 1u);
  EXPECT_EQ(log_.entries[0].tag, 1);
  EXPECT_FALSE(log_.entries[0].error);
  EXPECT_EQ(log_.entries[0].reply, answer);

  EXPECT_FALSE(table.complete(id, {}, answer)) << "a second reply is late";
  EXPECT_FALSE(table.complete(id, make_error_code(errc::no_handler), {}));
  EXPECT_FALSE(table.complete(0, {}, {})) << "0 is never an id";
  EXPECT_FALSE(table.complete(999, {}, {})) << "never issued";
  EXPECT_EQ(log_.count(1), 1);
  EXPECT_EQ(log_.count(2), 0) << "the other request is untouched";
  EXPECT_EQ(table.size(), 1u);

  EXPECT_TRUE(table.complete(other, make_error_code(errc::no_handler), {}));
  EXPECT_EQ(log_.entries.back().error, errc::no_handler);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.timeouts(), 0u);
}

TEST_F(pending_requests_test, OutcomesTimeTargetRepliesAndCountEveryOtherEndingByError) {
  pending_requests table(io_.get_executor(), 100);
  const auto add_started = [&](const node_id& target, clock::time_point started,
                               clock::time_point deadline) {
    request_callback done = log_.callback(0);
    return table.add(target, started, deadline, done);
  };
  // An error reply from the target is a round trip like any reply.
  const auto replied = add_started(node_a, clock::now() - 3ms, far_);
  ASSERT_TRUE(table.complete_reply(node_a, replied, make_error_code(errc::no_handler), {}));
  const auto answered = add_started(node_a, clock::now(), far_);
  ASSERT_TRUE(table.complete_reply(node_a, answered, make_error_code(errc::overloaded), {},
                                   pending_requests::answered_by::master));
  add_started(node_b, clock::now(), far_);
  table.fail_target(node_b, make_error_code(errc::node_left));
  add_started(node_a, clock::now(), clock::now() + 1ms);
  ASSERT_TRUE(run_until([&] { return log_.entries.size() == 4; }));
  table.count_refused(make_error_code(errc::too_large));
  add_started(node_a, clock::now(), far_);
  table.fail_all(make_error_code(errc::shutting_down));

  const auto& o = table.outcomes();
  EXPECT_EQ(o.latency.count, 1u);
  EXPECT_GE(o.latency.sum, 3ms) << "timed from the start the caller gave";
  EXPECT_EQ(o.failed.overloaded, 1u) << "a master's answer";
  EXPECT_EQ(o.failed.node_left, 1u);
  EXPECT_EQ(o.failed.timeout, 1u);
  EXPECT_EQ(o.failed.too_large, 1u);
  EXPECT_EQ(o.failed.shutting_down, 1u);
  EXPECT_EQ(o.failed.total(), 5u);
  EXPECT_EQ(table.timeouts(), 1u);
}

TEST_F(pending_requests_test, TimeoutsFireInDeadlineOrderAndAreCounted) {
  pending_requests table(io_.get_executor(), 100);
  const auto t0 = clock::now();
  // Added out of deadline order, and the earliest added last, after the timer is armed.
  add(table, node_a, t0 + 60ms, 1);
  add(table, node_b, t0 + 20ms, 2);
  add(table, node_a, t0 + 40ms, 3);
  const auto answered = add(table, node_a, t0 + 30ms, 4);
  add(table, node_b, t0 + 10ms, 5);

  ASSERT_TRUE(table.complete(answered, {}, {}));  // answered in time: never a timeout
  ASSERT_TRUE(run_until([&] { return log_.entries.size() == 5; }));
  run_for(20ms);

  EXPECT_EQ(log_.tags(), (std::vector<int>{4, 5, 2, 3, 1}));
  const std::chrono::milliseconds deadlines[] = {0ms, 60ms, 20ms, 40ms, 30ms, 10ms};
  for (const auto& e : log_.entries) {
    if (e.tag == 4) continue;
    EXPECT_EQ(e.error, errc::timeout) << "request " << e.tag;
    EXPECT_GE(e.at, t0 + deadlines[e.tag]) << "request " << e.tag << " timed out early";
  }
  EXPECT_EQ(table.timeouts(), 4u);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_FALSE(table.complete(1, {}, {})) << "a reply after the timeout is late";
}

TEST_F(pending_requests_test, EqualDeadlinesTimeOutOldestFirst) {
  pending_requests table(io_.get_executor(), 100);
  const auto deadline = clock::now() + 5ms;
  for (int tag = 1; tag <= 5; ++tag) add(table, node_a, deadline, tag);
  ASSERT_TRUE(run_until([&] { return log_.entries.size() == 5; }));
  EXPECT_EQ(log_.tags(), (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(table.timeouts(), 5u);
}

TEST_F(pending_requests_test, ARequestAddedFromATimeoutCallbackTimesOutToo) {
  pending_requests table(io_.get_executor(), 100);
  request_callback first = [&](std::error_code ec, byte_view) {
    log_.entries.push_back({1, ec, {}, clock::now()});
    request_callback second = log_.callback(2);
    EXPECT_EQ(table.add(node_a, clock::now(), clock::now() + 5ms, second), 2u);
  };
  ASSERT_EQ(table.add(node_a, clock::now(), clock::now() + 5ms, first), 1u);
  ASSERT_TRUE(run_until([&] { return log_.entries.size() == 2; }));
  EXPECT_EQ(log_.tags(), (std::vector<int>{1, 2}));
  EXPECT_EQ(log_.entries[1].error, errc::timeout);
  EXPECT_EQ(table.timeouts(), 2u);
}

TEST_F(pending_requests_test, FailTargetFailsOnlyThatTargetOldestFirst) {
  pending_requests table(io_.get_executor(), 1000);
  // Enough requests that the map's iteration order is not the id order.
  std::vector<int> expected;
  for (int tag = 1; tag <= 200; ++tag) {
    const bool to_a = tag % 3 != 0;
    add(table, to_a ? node_a : node_b, far_, tag);
    if (to_a) expected.push_back(tag);
  }
  table.fail_target(node_a, make_error_code(errc::node_left));
  EXPECT_EQ(log_.tags(), expected);
  for (const auto& e : log_.entries) EXPECT_EQ(e.error, errc::node_left);
  EXPECT_EQ(table.size(), 200u - expected.size());

  log_.entries.clear();
  table.fail_target(node_a, make_error_code(errc::node_left));
  EXPECT_TRUE(log_.entries.empty()) << "nothing left to fail for that target";
  EXPECT_EQ(table.timeouts(), 0u);
}

TEST_F(pending_requests_test, FailAllFailsEverythingInIdOrderAndDisarmsTimeouts) {
  pending_requests table(io_.get_executor(), 1000);
  std::vector<int> expected;
  for (int tag = 1; tag <= 100; ++tag) {
    add(table, tag % 2 ? node_a : node_b, clock::now() + 20ms, tag);
    expected.push_back(tag);
  }
  table.fail_all(make_error_code(errc::shutting_down));
  EXPECT_EQ(log_.tags(), expected);
  for (const auto& e : log_.entries) EXPECT_EQ(e.error, errc::shutting_down);
  EXPECT_EQ(table.size(), 0u);

  run_for(50ms);  // past every deadline
  EXPECT_EQ(log_.entries.size(), 100u) << "no second completion by timeout";
  EXPECT_EQ(table.timeouts(), 0u);
}

TEST_F(pending_requests_test, FullTableRefusesAndLeavesTheCallbackIntact) {
  pending_requests table(io_.get_executor(), 2);
  const auto first = add(table, node_a, far_, 1);
  add(table, node_a, far_, 2);

  request_callback refused = log_.callback(3);
  EXPECT_EQ(table.add(node_b, clock::now(), far_, refused), 0u);
  ASSERT_TRUE(refused) << "the caller still holds the callback, to fail it with overloaded";
  EXPECT_EQ(table.size(), 2u);
  EXPECT_TRUE(log_.entries.empty());

  ASSERT_TRUE(table.complete(first, {}, {}));
  const auto id = table.add(node_b, clock::now(), far_, refused);
  EXPECT_GT(id, 2u);
  EXPECT_TRUE(table.complete(id, {}, {}));
  EXPECT_EQ(log_.count(3), 1);
}

TEST_F(pending_requests_test, TakeHandsBackTheCallbackWithoutCallingIt) {
  pending_requests table(io_.get_executor(), 100);
  const auto id = add(table, node_a, clock::now() + 10ms, 1);
  add(table, node_a, far_, 2);

  request_callback taken = table.take(id);
  ASSERT_TRUE(taken);
  EXPECT_TRUE(log_.entries.empty());
  EXPECT_EQ(table.size(), 1u);
  EXPECT_FALSE(table.take(id)) << "taken once";
  EXPECT_FALSE(table.complete(id, {}, {}));
  EXPECT_FALSE(table.take(12345));

  run_for(40ms);  // past the taken request's deadline
  EXPECT_TRUE(log_.entries.empty()) << "a taken request does not time out";
  EXPECT_EQ(table.timeouts(), 0u);

  taken(make_error_code(errc::too_large), {});
  ASSERT_EQ(log_.entries.size(), 1u);
  EXPECT_EQ(log_.entries[0].error, errc::too_large);
}

// The table goes away in the turn its timer fired (another handler, due first, destroys it): the
// timer's handler, already queued with success, must not touch the dead table. Reading the freed
// table typically crashes; valgrind or ASan report it for certain.
TEST_F(pending_requests_test, DestroyedWhileItsTimerHandlerIsQueued) {
  auto table = std::make_unique<pending_requests>(io_.get_executor(), 100);
  // Both timers are due before the io_context runs, so one pass queues both, earliest first.
  asio::steady_timer earlier(io_);
  earlier.expires_at(clock::now() - 1s);
  bool destroyed = false;
  earlier.async_wait([&](std::error_code) {
    table.reset();
    destroyed = true;
  });
  add(*table, node_a, clock::now() - 1ms, 1);

  ASSERT_TRUE(run_until([&] { return destroyed; }));
  run_for(10ms);
  // The table died with its request pending: the callback is destroyed, never called.
  EXPECT_TRUE(log_.entries.empty());
}

// A slot freed by one request is reused by the next: a late reply for the old id must not reach
// the new request, nor read its frame size, even from the same node.
TEST_F(pending_requests_test, ALateReplyForAReusedSlotDoesNotReachTheNewRequest) {
  pending_requests table(io_.get_executor(), 100);
  request_callback first = log_.callback(1);
  const auto old_id = table.add(node_a, clock::now(), far_, first, 111);
  ASSERT_TRUE(table.complete(old_id, {}, {}));
  request_callback second = log_.callback(2);
  const auto new_id = table.add(node_a, clock::now(), far_, second, 222);  // takes the freed slot
  ASSERT_NE(new_id, old_id);

  EXPECT_FALSE(table.complete_reply(node_a, old_id, {}, {}));
  EXPECT_FALSE(table.complete(old_id, {}, {}));
  EXPECT_FALSE(table.take(old_id));
  EXPECT_FALSE(table.contains(old_id));
  EXPECT_EQ(table.frame_size(old_id), 0u);
  EXPECT_EQ(table.frame_size(new_id), 222u);
  EXPECT_EQ(log_.count(2), 0) << "the new request is still waiting";

  EXPECT_TRUE(table.complete_reply(node_a, new_id, {}, {}));
  EXPECT_EQ(log_.tags(), (std::vector<int>{1, 2}));
}

TEST_F(pending_requests_test, AnotherNodeCannotAnswerARequest) {
  pending_requests table(io_.get_executor(), 100);
  const auto id = add(table, node_a, far_, 1);
  EXPECT_FALSE(table.complete_reply(node_b, id, {}, {}));
  EXPECT_TRUE(table.contains(id)) << "still pending for its real target";
  EXPECT_TRUE(log_.entries.empty());
  EXPECT_TRUE(table.complete_reply(node_a, id, {}, {}));
  EXPECT_EQ(log_.count(1), 1);
}

// Thousands of requests through a handful of reused slots: ids keep rising, each answer reaches
// exactly its own request, and the size limit holds throughout.
TEST_F(pending_requests_test, ChurnThroughReusedSlotsKeepsIdsFreshAndTheBound) {
  constexpr std::size_t max_pending = 8;
  pending_requests table(io_.get_executor(), max_pending);
  std::vector<std::uint64_t> live;
  std::uint64_t last = 0;
  int tag = 0;
  for (int round = 0; round < 2000; ++round) {
    while (true) {
      const auto id = add(table, round % 2 ? node_a : node_b, far_, ++tag);
      if (id == 0) break;  // full
      ASSERT_GT(id, last) << "ids only rise, whatever slot they take";
      last = id;
      live.push_back(id);
    }
    ASSERT_EQ(table.size(), max_pending);
    // Answer every other one, oldest first, leaving a mix of old and new requests in the slots.
    for (std::size_t i = round % 2; i < live.size(); i += 2)
      ASSERT_TRUE(table.complete(live[i], {}, {}));
    std::erase_if(live, [&](std::uint64_t id) { return !table.contains(id); });
  }
  // Each tag completed at most once, and exactly the ones not still live.
  std::vector<int> completions(static_cast<std::size_t>(tag) + 1, 0);
  for (const auto& e : log_.entries) ++completions[static_cast<std::size_t>(e.tag)];
  for (int t = 1; t <= tag; ++t) ASSERT_LE(completions[static_cast<std::size_t>(t)], 1) << t;
  EXPECT_EQ(log_.entries.size() + live.size(), static_cast<std::size_t>(tag) - 2000)
      << "every add but the 2000 refused ones either completed or is still pending";
}

// Deadlines of different timeouts interleave, and answered requests leave from the middle: the
// expiry order is still exactly the deadline order (ties: oldest first). All deadlines are already
// past, so one pass of the timer expires everything that is left.
TEST_F(pending_requests_test, MixedTimeoutsExpireInDeadlineOrderAfterAnswersFromTheMiddle) {
  pending_requests table(io_.get_executor(), 1000);
  const auto base = clock::now() - 1s;
  const std::chrono::milliseconds timeouts[] = {30ms, 500ms, 5ms, 120ms};
  struct expected {
    clock::time_point deadline;
    std::uint64_t id;
    int tag;
  };
  std::vector<expected> left;
  for (int tag = 1; tag <= 400; ++tag) {
    // Requests asked 1 ms apart, each with one of four timeouts.
    const auto deadline = base + std::chrono::milliseconds(tag) + timeouts[tag % 4];
    const auto id = add(table, tag % 3 ? node_a : node_b, deadline, tag);
    left.push_back({deadline, id, tag});
  }
  for (std::size_t i = 0; i < left.size(); i += 3) ASSERT_TRUE(table.complete(left[i].id, {}, {}));
  for (std::size_t i = 0; i < left.size(); i += 3) left[i].tag = 0;
  std::erase_if(left, [](const expected& e) { return e.tag == 0; });
  log_.entries.clear();

  ASSERT_TRUE(run_until([&] { return log_.entries.size() == left.size(); }));
  std::sort(left.begin(), left.end(), [](const expected& x, const expected& y) {
    return x.deadline < y.deadline || (x.deadline == y.deadline && x.id < y.id);
  });
  std::vector<int> order;
  for (const auto& e : left) order.push_back(e.tag);
  EXPECT_EQ(log_.tags(), order);
  EXPECT_EQ(table.timeouts(), left.size());
  EXPECT_EQ(table.size(), 0u);
}

// A request cancelled before its frame went is gone at once: its callback is handed back (to be
// completed with operation_aborted by the caller), counted once as cancelled, never timed out.
TEST_F(pending_requests_test, ACancelledUnsentRequestIsGoneAndCountedOnce) {
  pending_requests table(io_.get_executor(), 100);
  const auto id = add(table, node_a, clock::now() + 10ms, 1);
  ASSERT_NE(table.awaited_target(id), nullptr);
  EXPECT_EQ(*table.awaited_target(id), node_a);

  request_callback done = table.cancel(id, false);
  ASSERT_TRUE(done);
  EXPECT_TRUE(log_.entries.empty()) << "the caller completes it";
  EXPECT_FALSE(table.contains(id));
  EXPECT_EQ(table.size(), 0u);
  EXPECT_FALSE(table.cancel(id, false)) << "cancelled once";
  EXPECT_FALSE(table.complete(id, {}, {}));
  EXPECT_EQ(table.outcomes().failed.cancelled, 1u);
  EXPECT_EQ(table.outcomes().failed.total(), 1u);

  run_for(30ms);  // past its deadline
  EXPECT_TRUE(log_.entries.empty());
  EXPECT_EQ(table.outcomes().failed.total(), 1u);
}

// A request cancelled after its frame went keeps its entry, without a callback, so that its reply
// is known for a late one and its frame size stays known (a master's answer refunds its credit);
// its deadline or its target's leaving then end it, uncounted and uncalled.
TEST_F(pending_requests_test, ACancelledSentRequestWaitsForItsReplyWithoutACallback) {
  pending_requests table(io_.get_executor(), 100);
  request_callback first = log_.callback(1);
  const auto replied = table.add(node_a, clock::now(), far_, first, 77);
  const auto expired = add(table, node_a, clock::now() + 10ms, 2);
  const auto left = add(table, node_b, far_, 3);

  for (auto id : {replied, expired, left}) ASSERT_TRUE(table.cancel(id, true));
  EXPECT_EQ(table.outcomes().failed.cancelled, 3u);
  EXPECT_EQ(table.size(), 3u) << "still in flight, and counted against max_pending";
  EXPECT_TRUE(table.contains(replied));
  EXPECT_EQ(table.frame_size(replied), 77u);
  EXPECT_EQ(table.awaited_target(replied), nullptr);
  EXPECT_FALSE(table.cancel(replied, true)) << "cancelled once";

  EXPECT_FALSE(table.complete_reply(node_a, replied, {}, {})) << "its reply is late";
  EXPECT_FALSE(table.contains(replied));
  table.fail_target(node_b, make_error_code(errc::node_left));
  EXPECT_FALSE(table.contains(left));
  ASSERT_TRUE(run_until([&] { return table.size() == 0; }));

  EXPECT_TRUE(log_.entries.empty()) << "a cancelled request's callback is the caller's";
  EXPECT_EQ(table.outcomes().failed.total(), 3u) << "each ended once, as cancelled";
  EXPECT_EQ(table.outcomes().latency.count, 0u);
}

// A target that left is failed at once; the other target's requests still time out at their
// deadline, and the failed ones never complete a second time by timeout.
TEST_F(pending_requests_test, FailTargetThenTheOthersStillTimeOut) {
  pending_requests table(io_.get_executor(), 100);
  const auto t0 = clock::now();
  add(table, node_a, t0 + 5ms, 1);
  add(table, node_b, t0 + 10ms, 2);
  add(table, node_a, t0 + 15ms, 3);
  add(table, node_b, t0 + 20ms, 4);
  table.fail_target(node_a, make_error_code(errc::node_left));
  EXPECT_EQ(log_.tags(), (std::vector<int>{1, 3}));

  ASSERT_TRUE(run_until([&] { return log_.entries.size() == 4; }));
  run_for(20ms);  // a window for a wrong second completion
  EXPECT_EQ(log_.tags(), (std::vector<int>{1, 3, 2, 4}));
  EXPECT_EQ(log_.entries[2].error, errc::timeout);
  EXPECT_GE(log_.entries[3].at, t0 + 20ms);
  EXPECT_EQ(table.timeouts(), 2u);
}

// What a master's answer refunds: a sent request's frame, pending or ended by its deadline (then
// once, and only for its own target); never one that was not sent. The ended ones are remembered
// for max_pending requests, the oldest forgotten first.
TEST_F(pending_requests_test, AMastersAnswerRefundsSentRequestsEvenAfterTheirDeadline) {
  pending_requests table(io_.get_executor(), 2);
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    request_callback done = log_.callback(i);
    ids.push_back(table.add(node_a, clock::now(), clock::now() + 5ms, done, 100 + i));
    if (i < 2) table.mark_sent(ids.back());
    if (i == 1) ASSERT_TRUE(run_until([&] { return log_.entries.size() == 2; }));  // room for one
  }
  request_callback pending = log_.callback(9);
  const auto unsent = ids[2];
  ASSERT_TRUE(run_until([&] { return log_.entries.size() == 3; }));
  const auto live = table.add(node_b, clock::now(), far_, pending, 50);
  table.mark_sent(live);

  EXPECT_EQ(table.master_answered(node_b, live), 50u) << "pending and sent";
  EXPECT_EQ(table.master_answered(node_b, ids[0]), 0u) << "not its target";
  EXPECT_EQ(table.master_answered(node_a, ids[0]), 100u) << "ended by its deadline";
  EXPECT_EQ(table.master_answered(node_a, ids[0]), 0u) << "once";
  EXPECT_EQ(table.master_answered(node_a, unsent), 0u) << "never sent, took no credit";
  table.answered_late(ids[1]);
  EXPECT_EQ(table.master_answered(node_a, ids[1]), 0u) << "its target answered it";

  // Past the bound, the oldest are forgotten.
  pending_requests small(io_.get_executor(), 1);
  std::vector<std::uint64_t> ended;
  for (int i = 0; i < 3; ++i) {
    request_callback done = log_.callback(20 + i);
    ended.push_back(small.add(node_a, clock::now(), clock::now() + 1ms, done, 10));
    small.mark_sent(ended.back());
    ASSERT_TRUE(run_until([&] { return log_.count(20 + i) == 1; }));
  }
  EXPECT_EQ(small.master_answered(node_a, ended[0]), 0u);
  EXPECT_EQ(small.master_answered(node_a, ended[1]), 0u);
  EXPECT_EQ(small.master_answered(node_a, ended[2]), 10u);
}

}  // namespace
}  // namespace galaxies::detail
