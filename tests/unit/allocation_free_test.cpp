// The request path allocates nothing once warm (issue #8): the requester's pending table, the
// request callback, node::request()'s wrapper around the user's handler and a master's ledger. This
// program replaces the global operator new to count, so it holds only these tests, and is no
// program for valgrind's memcheck (which substitutes operator new for some calls and then reports
// our delete as a mismatched free); the tables' other tests stay in programs that memcheck can run.
// A test skips itself if the count does not see an allocation at all.
#include <gtest/gtest.h>

#include <asio/execution/outstanding_work.hpp>
#include <asio/io_context.hpp>
#include <asio/prefer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "galaxies/node.hpp"
#include "router/request_ledger.hpp"
#include "support/counting_new.hpp"
#include "transport/pending_requests.hpp"
#include "worker/node_core.hpp"

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;
using clock = pending_requests::clock;

const node_id node_a(uuid({0xa1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
const node_id node_b(uuid({0xb2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}));

using test::allocations_during;

class allocation_free_test : public ::testing::Test {
 protected:
  void SetUp() override {
    // The counter must see an allocation, or a zero below would prove nothing.
    // (Through a volatile pointer: a new-expression paired with its delete may be elided.)
    const auto seen = allocations_during([] {
      void* volatile p = ::operator new(16);
      ::operator delete(p);
    });
    if (seen != 1) GTEST_SKIP() << "operator new is not ours (valgrind?): nothing to count";
  }
  asio::io_context io_;
};

// The point of the slab, the index and the heap: once the table has held as many requests as it
// holds now, asking and answering allocates nothing in the table. (The callbacks are made before
// counting: whether a callback allocates is unique_function's business.)
TEST_F(allocation_free_test, PendingRequestsAskAndAnswerWithoutAllocatingOnceWarm) {
  pending_requests table(io_.get_executor(), 1000);
  int answered = 0;
  auto callbacks = [&](std::size_t n) {
    std::vector<request_callback> out;
    for (std::size_t i = 0; i < n; ++i)
      out.emplace_back([&answered](std::error_code, bytes) { ++answered; });
    return out;
  };
  // Warm: 100 in flight at once, with two timeouts (the timer is armed for the earliest).
  auto warm = callbacks(100);
  std::vector<std::uint64_t> ids;
  for (std::size_t i = 0; i < warm.size(); ++i)
    ids.push_back(table.add(node_a, clock::now(), clock::now() + (i % 2 ? 10s : 20s), warm[i], 64));
  for (auto id : ids) ASSERT_TRUE(table.complete_reply(node_a, id, {}, {}));

  auto steady = callbacks(1000);
  const auto allocations = allocations_during([&] {
    // One at a time, then bursts of ten answered newest first: slots and heap places reused.
    for (std::size_t i = 0; i < 500; ++i) {
      const auto id = table.add(node_b, clock::now(), clock::now() + 10s, steady[i], 64);
      table.complete_reply(node_b, id, {}, {});
    }
    for (std::size_t i = 500; i < 1000; i += 10) {
      std::uint64_t burst[10];
      for (std::size_t k = 0; k < 10; ++k)
        burst[k] =
            table.add(node_a, clock::now(), clock::now() + (k % 2 ? 10s : 20s), steady[i + k], 64);
      for (std::size_t k = 10; k-- > 0;) table.complete_reply(node_a, burst[k], {}, {});
    }
  });
  EXPECT_EQ(allocations, 0u);
  EXPECT_EQ(answered, 1100);
  EXPECT_EQ(table.size(), 0u);
}

// A request's completion as users write it (a few references and a shared_ptr) and as
// node::request() wraps an Asio handler (the handler beside a work-tracking executor): made, moved
// through the table and called without an allocation.
TEST_F(allocation_free_test, SmallRequestCallbacksLiveInline) {
  int calls = 0;
  auto state = std::make_shared<int>(0);
  auto executor = asio::prefer(io_.get_executor(), asio::execution::outstanding_work.tracked);
  auto user = [&calls, state, tag = 7](std::error_code, bytes reply) {
    calls += static_cast<int>(reply.size()) + tag - 7;
  };
  auto wrapped = [handler = user, executor](std::error_code ec, bytes reply) mutable {
    handler(ec, std::move(reply));
  };
  static_assert(request_callback::fits_inline<decltype(user)>);
  static_assert(request_callback::fits_inline<decltype(wrapped)>);
  const auto allocations = allocations_during([&] {
    request_callback first = user;
    request_callback second = wrapped;
    request_callback moved = std::move(first);
    moved({}, {});
    second = std::move(moved);
    second({}, {});
  });
  EXPECT_EQ(allocations, 0u);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(state.use_count(), 3) << "ours, user's and wrapped's";
}

// node::request() and async_send() as users call them: the user's handler, wrapped beside its
// executor (tracking work), fits the callback's buffer. A node that is not connected fails each at
// once, posted, through the same wrapper; the post's memory is Asio's recycled block.
TEST_F(allocation_free_test, NodeRequestAndAsyncSendWrapHandlersWithoutAllocating) {
  auto core =
      std::make_shared<detail::node_core>(io_.get_executor(), detail::node_core::settings{});
  node api(core);
  const node_id someone(uuid({0xc3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}));
  int failed = 0;
  auto ask = [&] {
    api.request(someone, "m", {}, 1s,
                [&failed](std::error_code ec, bytes) { failed += ec == errc::not_connected; });
    api.async_send(someone, "m", {},
                   [&failed](std::error_code ec) { failed += ec == errc::not_connected; });
    io_.restart();
    io_.poll();
  };
  ask();  // warm: Asio's recycled blocks
  const auto allocations = allocations_during([&] {
    for (int i = 0; i < 100; ++i) ask();
  });
  EXPECT_EQ(allocations, 0u);
  EXPECT_EQ(failed, 202);
}

// A master's ledger, once it has held as many requests as it holds now: forwarding, answering and
// expiring allocate nothing (entry nodes and deadline FIFOs are reused).
TEST_F(allocation_free_test, TheLedgerForwardsAnswersAndExpiresWithoutAllocatingOnceWarm) {
  router::request_ledger ledger(1000, 10000);
  const int via = 0;
  auto now = clock::now();
  std::uint64_t id = 1;
  // Ten requests a round with two timeouts; half answered, the rest expire a few rounds later.
  auto rounds = [&](int n) {
    for (int round = 0; round < n; ++round) {
      for (std::uint64_t i = 0; i < 10; ++i)
        EXPECT_EQ(ledger.add(node_a, id + i, node_b, &via, i % 2 ? 100ms : 2s, now),
                  router::request_ledger::add_result::added);
      for (std::uint64_t i = 0; i < 5; ++i)
        EXPECT_TRUE(ledger.answer(node_a, id + i, node_b, &via));
      id += 10;
      now += 1s;
      ledger.expire(now);
    }
  };
  rounds(20);
  const auto allocations = allocations_during([&] { rounds(200); });
  EXPECT_EQ(allocations, 0u);
  EXPECT_LE(ledger.size(), 10u);
}

}  // namespace
}  // namespace galaxies::transport
