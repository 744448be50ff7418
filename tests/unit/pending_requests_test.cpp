// The requester's table: ids, exactly-once completion, timeouts in deadline order, failing one
// target's requests or all of them, the size limit. Timeouts run on a real io_context with short
// deadlines; waits are bounded and nothing sleeps.
#include "transport/pending_requests.hpp"

#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "support/eventually.hpp"

namespace galaxies::transport {
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
    return [this, tag](std::error_code error, bytes reply) {
      entries.push_back({tag, error, std::move(reply), clock::now()});
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
    return table.add(target, deadline, done);
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
  request_callback first = [&](std::error_code ec, bytes) {
    log_.entries.push_back({1, ec, {}, clock::now()});
    request_callback second = log_.callback(2);
    EXPECT_EQ(table.add(node_a, clock::now() + 5ms, second), 2u);
  };
  ASSERT_EQ(table.add(node_a, clock::now() + 5ms, first), 1u);
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
  EXPECT_EQ(table.add(node_b, far_, refused), 0u);
  ASSERT_TRUE(refused) << "the caller still holds the callback, to fail it with overloaded";
  EXPECT_EQ(table.size(), 2u);
  EXPECT_TRUE(log_.entries.empty());

  ASSERT_TRUE(table.complete(first, {}, {}));
  const auto id = table.add(node_b, far_, refused);
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

}  // namespace
}  // namespace galaxies::transport
