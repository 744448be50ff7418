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
#include "node_core_harness.hpp"
#include "router/request_ledger.hpp"
#include "support/counting_new.hpp"
#include "wire/message.hpp"
#include "worker/node_core.hpp"
#include "worker/pending_requests.hpp"

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;
using clock = detail::pending_requests::clock;

const node_id node_a(uuid({0xa1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
const node_id node_b(uuid({0xb2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}));

using test::allocations_during;

// The counter must see an allocation, or a zero would prove nothing.
// (Through a volatile pointer: a new-expression paired with its delete may be elided.)
bool counting_works() {
  return allocations_during([] {
           void* volatile p = ::operator new(16);
           ::operator delete(p);
         }) == 1;
}

class allocation_free_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!counting_works()) GTEST_SKIP() << "operator new is not ours (valgrind?): nothing to count";
  }
  asio::io_context io_;
};

// The point of the slab, the index and the heap: once the table has held as many requests as it
// holds now, asking and answering allocates nothing in the table. (The callbacks are made before
// counting: whether a callback allocates is unique_function's business.)
TEST_F(allocation_free_test, PendingRequestsAskAndAnswerWithoutAllocatingOnceWarm) {
  detail::pending_requests table(io_.get_executor(), 1000);
  int answered = 0;
  auto callbacks = [&](std::size_t n) {
    std::vector<request_callback> out;
    for (std::size_t i = 0; i < n; ++i)
      out.emplace_back([&answered](std::error_code, byte_view) { ++answered; });
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
  // The executor node::request() tracks: any_io_executor, the node's own.
  auto executor = asio::prefer(asio::any_io_executor(io_.get_executor()),
                               asio::execution::outstanding_work.tracked);
  auto user = [&calls, state, tag = 7](std::error_code, byte_view reply) {
    calls += static_cast<int>(reply.size()) + tag - 7;
  };
  // As the form reading into the caller's buffer wraps a handler: beside the buffer's address.
  bytes buffer;
  auto wrapped = [handler = user, executor, reply = &buffer](std::error_code ec,
                                                             byte_view answer) mutable {
    reply->assign(answer.begin(), answer.end());
    handler(ec, *reply);
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

// Whole round trips through a node's channel (the test plays its master): a request, its frame
// written, the reply read and the completion run. Into the caller's buffer, once that buffer and
// the node's tables are warm, nothing is allocated; the form that hands over a new `bytes`
// allocates it, which shows that the count sees the reply's bytes.
class allocation_free_round_trip : public detail::test::node_core_harness {
 protected:
  void SetUp() override {
    if (!counting_works()) GTEST_SKIP() << "operator new is not ours (valgrind?): nothing to count";
    node_core_harness::SetUp();
    api_ = std::make_unique<galaxies::node>(core_);
    in_.resize(1 << 16);
    reply_frame_.reserve(4096);
  }
  void TearDown() override {
    if (core_) node_core_harness::TearDown();
  }

  // Starts a request with `ask`, answers it as x_ would and runs its completion.
  template <class Ask>
  void round_trip(Ask ask) {
    const int before = completed_;
    ask();
    std::uint64_t id = 0;
    for (int i = 0; i < 1000 && id == 0; ++i) {
      io_.poll();
      id = request_written();
    }
    ASSERT_NE(id, 0u) << "the request was not written";
    reply_frame_.clear();
    wire::append_message(reply_frame_, wire::frame_type::reply, x_, core_->id(), id, 0, {},
                         as_bytes(answer_), limits::default_max_frame_size);
    core_->on_frame(wire::frame_parser().parse(reply_frame_).frame);
    for (int i = 0; i < 1000 && completed_ == before; ++i) io_.poll();
    ASSERT_EQ(completed_, before + 1);
  }

  // The id of the request among what the node wrote, read without allocating; 0 if none yet.
  std::uint64_t request_written() {
    const ssize_t n = ::recv(master_fd_, in_.data(), in_.size(), MSG_DONTWAIT);
    std::span<const std::byte> rest(in_.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
    std::uint64_t id = 0;
    for (wire::parse_result r;
         (r = wire::frame_parser().parse(rest)).state == wire::parse_result::status::frame;) {
      if (r.frame.header.type == wire::frame_type::request) id = wire::peek_request_id(r.frame);
      rest = rest.subspan(r.frame.bytes.size());
    }
    return id;
  }

  std::unique_ptr<galaxies::node> api_;
  std::vector<std::byte> in_;
  std::vector<std::byte> reply_frame_;
  const std::string answer_ = std::string(100, 'a');
  int completed_ = 0;
};

TEST_F(allocation_free_round_trip, ARequestIntoTheCallersBufferAllocatesNothingOnceWarm) {
  bytes reply;
  std::size_t size = 0;
  auto ask = [&] {
    api_->request(x_, "m", as_bytes("q"), 10s, reply, [&](std::error_code ec, std::size_t n) {
      completed_ += !ec;
      size = n;
    });
  };
  for (int i = 0; i < 20; ++i) round_trip(ask);  // warm: the buffer, the tables, Asio's blocks
  constexpr int n = 200;
  const auto allocations = allocations_during([&] {
    for (int i = 0; i < n; ++i) round_trip(ask);
  });
  EXPECT_EQ(allocations, 0u);
  EXPECT_EQ(completed_, 20 + n);
  EXPECT_EQ(size, answer_.size());
  EXPECT_EQ(as_text(reply), answer_);

  const auto with_new_bytes = allocations_during([&] {
    for (int i = 0; i < n; ++i)
      round_trip([&] {
        api_->request(x_, "m", as_bytes("q"), 10s,
                      [&](std::error_code ec, bytes) { completed_ += !ec; });
      });
  });
  EXPECT_GE(with_new_bytes, static_cast<std::size_t>(n)) << "each reply's own bytes";
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
