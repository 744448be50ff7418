// node::request() beyond its plain use: the reply read into the caller's buffer, Asio's
// per-operation cancellation wherever the request is (waiting for credit, or sent), and the
// deadline a handler sees. The test plays the node's master, frame by frame.
#include <gtest/gtest.h>

#include <array>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "node_core_harness.hpp"
#include "support/eventually.hpp"
#include "wire/credit.hpp"
#include "wire/message.hpp"

namespace galaxies::detail {
namespace {

using namespace std::chrono_literals;
using asio::cancellation_type;
using clock = std::chrono::steady_clock;

class NodeRequest : public test::node_core_harness {
 protected:
  struct request_frame {
    std::uint64_t id = 0;
    std::uint32_t word = 0;  // the timeout the requester gave, in ms
    std::string payload;
  };

  galaxies::node& api() {
    if (!api_) api_ = std::make_unique<galaxies::node>(core_);
    return *api_;
  }

  // The requests among the frames the node has written since the last call.
  std::vector<request_frame> requests_written() {
    std::vector<request_frame> out;
    for (const auto& f : written()) {
      wire::message_view m;
      const auto view = wire::frame_parser().parse(f).frame;
      if (view.header.type == wire::frame_type::request && !wire::decode_message(view, m))
        out.push_back({m.request_id, m.word, std::string(as_text(m.payload))});
    }
    return out;
  }

  void reply(const node_id& from, std::uint64_t id, std::string_view payload) {
    feed([&](auto& out) {
      wire::append_message(out, wire::frame_type::reply, from, core_->id(), id, 0, {},
                           as_bytes(payload), limits::default_max_frame_size);
    });
  }

  void grant(const node_id& from, std::uint32_t bytes) {
    feed([&](auto& out) {
      wire::append_credit(out, {from, core_->id(), bytes, limits::default_flow_window});
    });
  }

  // Takes all of the node's credit towards `to` with one request that is never answered, and
  // reads all it wrote (the large frame goes in slices, over several writes).
  void exhaust_credit(const node_id& to) {
    const bytes whole_window(limits::default_flow_window - wire::message_frame_size(1, 0));
    api().request(to, "m", whole_window, 10s, [](std::error_code, bytes) {});
    std::vector<std::byte> in(1 << 20);
    for (int idle = 0; idle < 3;) {
      io_.run_for(5ms);
      idle = ::recv(master_fd_, in.data(), in.size(), MSG_DONTWAIT) > 0 ? 0 : idle + 1;
    }
  }

  // A master's answer for the target: the request never reached it (protocol.md §4).
  void master_answer(const node_id& target, std::uint64_t id, errc status) {
    feed([&](auto& out) {
      wire::append_message(out, wire::frame_type::reply, target, core_->id(), id,
                           static_cast<std::uint32_t>(status), {}, as_bytes("queue full"),
                           limits::default_max_frame_size, wire::flag_from_master);
    });
  }

  // Sends a request to x_ taking all of the credit towards it, and lets its deadline pass
  // unanswered; its id (0 if that went otherwise).
  std::uint64_t timed_out_request_taking_the_window() {
    const bytes whole_window(limits::default_flow_window - wire::message_frame_size(1, 0));
    std::optional<std::error_code> outcome;
    api().request(x_, "m", whole_window, 30ms, [&](std::error_code ec, bytes) { outcome = ec; });
    std::vector<request_frame> sent;
    const bool done = run_until([&] {
      for (auto& r : requests_written()) sent.push_back(std::move(r));
      return !sent.empty() && outcome.has_value();
    });
    return done && sent.size() == 1 && *outcome == errc::timeout ? sent[0].id : 0;
  }

  bool run_until(const std::function<bool()>& done) {
    return galaxies::test::run_until(io_, done, 5000ms);
  }

  std::unique_ptr<galaxies::node> api_;
};

// A master may answer for a request after its deadline ended it (the request waited in a queue
// that was full by the time it got there): the bytes it took of our credit come back all the same,
// or each such request would shrink the window to its target for good.
TEST_F(NodeRequest, AMastersAnswerAfterTheDeadlineStillGivesTheCreditBack) {
  const auto id = timed_out_request_taking_the_window();
  ASSERT_NE(id, 0u);
  EXPECT_EQ(api().send(x_, "m", as_bytes("more")), errc::overloaded) << "the request holds it";
  master_answer(x_, id, errc::overloaded);
  EXPECT_FALSE(api().send(x_, "m", as_bytes("more")));
  // Once only: the same answer again gives nothing more.
  master_answer(x_, id, errc::overloaded);
  const bytes most(limits::default_flow_window - 2 * wire::message_frame_size(1, 4));
  EXPECT_FALSE(api().send(x_, "m", most));
  EXPECT_EQ(api().send(x_, "m", as_bytes("more")), errc::overloaded);
}

// The target itself answered after the deadline: the request arrived, and its bytes come back as
// the target grants them, not with the reply.
TEST_F(NodeRequest, ALateReplyFromTheTargetGivesNoCreditBack) {
  const auto id = timed_out_request_taking_the_window();
  ASSERT_NE(id, 0u);
  reply(x_, id, "late");
  EXPECT_EQ(api().send(x_, "m", as_bytes("more")), errc::overloaded);
  master_answer(x_, id, errc::overloaded);  // forged or confused: the reply settled it
  EXPECT_EQ(api().send(x_, "m", as_bytes("more")), errc::overloaded);
  grant(x_, limits::default_flow_window);
  EXPECT_FALSE(api().send(x_, "m", as_bytes("more")));
}

TEST_F(NodeRequest, TheReplyIsReadIntoTheCallersBufferReusingItsCapacity) {
  bytes buffer;
  buffer.reserve(64);
  const auto* storage = buffer.data();
  std::vector<std::pair<std::error_code, std::size_t>> done;
  api().request(x_, "m", as_bytes("q"), 10s, buffer,
                [&](std::error_code ec, std::size_t n) { done.emplace_back(ec, n); });
  const auto sent = requests_written();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].payload, "q");
  reply(x_, sent[0].id, "the answer");
  ASSERT_TRUE(run_until([&] { return !done.empty(); }));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_FALSE(done[0].first);
  EXPECT_EQ(done[0].second, 10u);
  EXPECT_EQ(as_text(buffer), "the answer");
  EXPECT_EQ(buffer.data(), storage) << "its capacity sufficed: reused, not reallocated";

  // A local failure empties it; an error the target answers with leaves its text there.
  api().request(node_id::random(), "m", as_bytes("q"), 10s, buffer,
                [&](std::error_code ec, std::size_t n) { done.emplace_back(ec, n); });
  ASSERT_TRUE(run_until([&] { return done.size() == 2; }));
  EXPECT_EQ(done[1].first, errc::no_such_node);
  EXPECT_EQ(done[1].second, 0u);
  EXPECT_TRUE(buffer.empty());
}

// Cancelled while it waits for credit: completes at once, is never sent, and what waited behind
// it goes when credit comes. Nothing it does has happened yet, so even total cancellation applies.
TEST_F(NodeRequest, CancelledWhileWaitingForCreditItIsNeverSent) {
  exhaust_credit(x_);
  asio::cancellation_signal signal;
  bytes buffer;
  std::vector<std::error_code> held;
  std::optional<std::error_code> behind;
  api().request(x_, "m", as_bytes("held"), 10s, buffer,
                asio::bind_cancellation_slot(
                    signal.slot(), [&](std::error_code ec, std::size_t) { held.push_back(ec); }));
  api().request(x_, "m", as_bytes("behind"), 10s, [&](std::error_code ec, bytes) { behind = ec; });
  EXPECT_TRUE(requests_written().empty()) << "both wait for credit";

  signal.emit(cancellation_type::total);
  ASSERT_TRUE(run_until([&] { return !held.empty(); }));
  EXPECT_EQ(held[0], asio::error::operation_aborted);
  EXPECT_FALSE(behind);

  grant(x_, limits::default_flow_window);
  const auto sent = requests_written();
  ASSERT_EQ(sent.size(), 1u) << "the cancelled request never goes";
  EXPECT_EQ(sent[0].payload, "behind");

  signal.emit(cancellation_type::terminal);  // after completion: nothing
  reply(x_, sent[0].id, "ok");
  ASSERT_TRUE(run_until([&] { return behind.has_value(); }));
  EXPECT_FALSE(*behind);
  EXPECT_EQ(held.size(), 1u);
  const auto c = core_->counters();
  EXPECT_EQ(c.failed_requests.cancelled, 1u);
  EXPECT_EQ(c.failed_requests.total(), 1u);
  EXPECT_EQ(c.late_replies, 0u);
}

// Sent: total cancellation would need it undone, which it cannot be, so it does nothing; partial
// (or terminal) ends it. Its reply then comes late: dropped, counted, never delivered.
TEST_F(NodeRequest, CancelledInFlightItsLateReplyIsCountedAndNeverDelivered) {
  asio::cancellation_signal signal;
  bytes buffer;
  std::vector<std::error_code> done;
  api().request(x_, "m", as_bytes("q"), 10s, buffer,
                asio::bind_cancellation_slot(
                    signal.slot(), [&](std::error_code ec, std::size_t) { done.push_back(ec); }));
  const auto sent = requests_written();
  ASSERT_EQ(sent.size(), 1u);

  signal.emit(cancellation_type::total);
  io_.run_for(20ms);  // a window for a wrong completion
  EXPECT_TRUE(done.empty()) << "total cancellation does not apply once sent";

  signal.emit(cancellation_type::partial);
  ASSERT_TRUE(run_until([&] { return !done.empty(); }));
  EXPECT_EQ(done[0], asio::error::operation_aborted);
  EXPECT_TRUE(buffer.empty());

  reply(x_, sent[0].id, "too late");
  io_.run_for(20ms);
  EXPECT_EQ(done.size(), 1u);
  EXPECT_TRUE(buffer.empty()) << "a late reply is never delivered";
  const auto c = core_->counters();
  EXPECT_EQ(c.late_replies, 1u);
  EXPECT_EQ(c.failed_requests.cancelled, 1u);
  EXPECT_EQ(c.request_latency.count, 0u);
}

// The usual race: a request against a timer, whichever first; the loser is cancelled.
TEST_F(NodeRequest, AParallelGroupRacingATimerCancelsTheRequest) {
  asio::steady_timer timer(io_, 30ms);
  std::optional<std::array<std::size_t, 2>> order;
  std::error_code request_error;
  asio::experimental::make_parallel_group(
      api().request(x_, "m", as_bytes("q"), 10s, asio::experimental::deferred),
      timer.async_wait(asio::experimental::deferred))
      .async_wait(asio::experimental::wait_for_one(),
                  [&](std::array<std::size_t, 2> o, std::error_code ec, bytes, std::error_code) {
                    order = o;
                    request_error = ec;
                  });
  const auto sent = requests_written();
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_TRUE(run_until([&] { return order.has_value(); }));
  EXPECT_EQ((*order)[0], 1u) << "the timer won";
  EXPECT_EQ(request_error, asio::error::operation_aborted);

  reply(x_, sent[0].id, "too late");
  EXPECT_EQ(core_->counters().late_replies, 1u);
  EXPECT_EQ(core_->counters().failed_requests.cancelled, 1u);
}

TEST_F(NodeRequest, AParallelGroupWonByTheRequestCancelsTheTimer) {
  asio::steady_timer timer(io_, 10s);
  std::optional<std::array<std::size_t, 2>> order;
  std::error_code request_error, timer_error;
  std::string answer;
  asio::experimental::make_parallel_group(
      api().request(x_, "m", as_bytes("q"), 10s, asio::experimental::deferred),
      timer.async_wait(asio::experimental::deferred))
      .async_wait(asio::experimental::wait_for_one(),
                  [&](std::array<std::size_t, 2> o, std::error_code ec, bytes reply,
                      std::error_code timer_ec) {
                    order = o;
                    request_error = ec;
                    answer = as_text(reply);
                    timer_error = timer_ec;
                  });
  const auto sent = requests_written();
  ASSERT_EQ(sent.size(), 1u);
  reply(x_, sent[0].id, "in time");
  ASSERT_TRUE(run_until([&] { return order.has_value(); }));
  EXPECT_EQ((*order)[0], 0u);
  EXPECT_FALSE(request_error);
  EXPECT_EQ(answer, "in time");
  EXPECT_EQ(timer_error, asio::error::operation_aborted);
  const auto c = core_->counters();
  EXPECT_EQ(c.request_latency.count, 1u);
  EXPECT_EQ(c.failed_requests.total(), 0u) << "a completed request is not cancelled by the group";
}

// Awaitable operators: `request || timer` in a coroutine, the buffer form.
TEST_F(NodeRequest, AnAwaitableRaceWithATimerCancelsTheRequest) {
  using namespace asio::experimental::awaitable_operators;
  using asio::experimental::as_tuple;
  bytes buffer;
  std::optional<std::size_t> winner;
  std::error_code request_error;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(io_, 30ms);
        const auto result = co_await (
            api().request(x_, "m", as_bytes("q"), 10s, buffer, as_tuple(asio::use_awaitable)) ||
            timer.async_wait(as_tuple(asio::use_awaitable)));
        winner = result.index();
        if (result.index() == 0) request_error = std::get<0>(std::get<0>(result));
      },
      asio::detached);
  const auto sent = requests_written();
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_TRUE(run_until([&] { return winner.has_value(); }));
  EXPECT_EQ(*winner, 1u) << "the timer won";
  EXPECT_EQ(core_->counters().failed_requests.cancelled, 1u);
  reply(x_, sent[0].id, "too late");
  EXPECT_EQ(core_->counters().late_replies, 1u);
  EXPECT_TRUE(buffer.empty());
}

// A handler learns when its requester gives up: its receipt plus the timeout on the wire.
TEST_F(NodeRequest, AHandlerSeesTheRequestersDeadline) {
  std::vector<message> seen;  // command and payload views not kept
  core_->set_handler("ask", [&](const message& m, responder r) {
    message kept;
    kept.from = m.from;
    kept.is_request = m.is_request;
    kept.deadline = m.deadline;
    seen.push_back(kept);
    r.reply(as_bytes("ok"));
  });
  const auto before = clock::now();
  feed([&](auto& out) {
    wire::append_message(out, wire::frame_type::request, x_, core_->id(), 7, 1500, "ask",
                         as_bytes("q"), limits::default_max_frame_size);
  });
  const auto after = clock::now();
  feed([&](auto& out) {
    wire::append_message(out, wire::frame_type::send, x_, core_->id(), 0, 0, "ask", as_bytes("s"),
                         limits::default_max_frame_size);
  });
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].is_request);
  EXPECT_GE(seen[0].deadline, before + 1500ms);
  EXPECT_LE(seen[0].deadline, after + 1500ms);
  EXPECT_EQ(seen[1].deadline, clock::time_point::max()) << "a send has none";
}

// A request that waited for credit says how long its requester still waits, not how long it
// was given: the target's deadline stays the requester's.
TEST_F(NodeRequest, ARequestThatWaitedCarriesTheTimeItHasLeft) {
  exhaust_credit(x_);
  const auto asked = clock::now();
  api().request(x_, "m", as_bytes("q"), 2000ms, [](std::error_code, bytes) {});
  EXPECT_TRUE(requests_written().empty());
  io_.run_for(100ms);
  const auto granted = clock::now();
  grant(x_, limits::default_flow_window);
  const auto sent = requests_written();
  ASSERT_EQ(sent.size(), 1u);
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(granted - asked);
  ASSERT_GE(waited, 100ms);
  EXPECT_LE(sent[0].word, (2000ms - waited).count() + 1);
  EXPECT_GT(sent[0].word, 0u);
}

}  // namespace
}  // namespace galaxies::detail
