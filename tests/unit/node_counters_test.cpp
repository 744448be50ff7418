// A node's counters follow its real traffic: replies from the target fill the latency histogram,
// every other ending counts as a failure by its error, and per-peer figures match what was sent
// and received, and go when the peer leaves. The test plays the node's master, frame by frame.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "node_core_harness.hpp"
#include "wire/message.hpp"
#include "wire/message_batch.hpp"

namespace galaxies::detail {
namespace {

using namespace std::chrono_literals;

class NodeCounters : public test::node_core_harness {
 protected:
  std::optional<peer_traffic> peer(const node_id& id) const {
    for (const auto& p : core_->peer_counters())
      if (p.node == id) return p;
    return std::nullopt;
  }

  void reply(const node_id& from, std::uint64_t id, errc status, std::string_view payload,
             std::uint8_t flags = 0) {
    feed([&](auto& out) {
      wire::append_message(out, wire::frame_type::reply, from, core_->id(), id,
                           static_cast<std::uint32_t>(status), {}, as_bytes(payload),
                           limits::default_max_frame_size, flags);
    });
  }

  // Starts a request whose outcome lands in `outcome`.
  void request(const node_id& to, std::string_view command, std::string_view payload,
               std::chrono::milliseconds timeout, std::optional<std::error_code>& outcome) {
    core_->start_request(to, command, as_bytes(payload), timeout,
                         [&outcome](std::error_code ec, byte_view) { outcome = ec; });
  }
};

TEST_F(NodeCounters, RepliesFromTheTargetAreTimedAndCountedPerPeer) {
  constexpr int n = 5;
  int completed = 0;
  for (int i = 0; i < n; ++i)
    core_->start_request(x_, "ping", as_bytes("1234"), 10s, [&](std::error_code, byte_view) {
      ++completed;
      // Counted before the callback runs: a callback publishing them sees its own request.
      EXPECT_EQ(core_->counters().request_latency.count, static_cast<std::uint64_t>(completed));
      EXPECT_EQ(peer(x_)->replies_received, static_cast<std::uint64_t>(completed));
    });
  const auto ids = requests_written();
  ASSERT_EQ(ids.size(), static_cast<std::size_t>(n));
  // An error the target answers with is a completed round trip too.
  for (int i = 0; i < n; ++i) reply(x_, ids[i], i == 0 ? errc::no_handler : errc::ok, "12345678");
  EXPECT_EQ(completed, n);

  const auto c = core_->counters();
  EXPECT_EQ(c.request_latency.count, static_cast<std::uint64_t>(n));
  EXPECT_EQ(c.request_latency.counts().back(), static_cast<std::uint64_t>(n));
  EXPECT_GT(c.request_latency.sum.count(), 0);
  EXPECT_EQ(c.failed_requests.total(), 0u);
  EXPECT_EQ(c.sent, static_cast<std::uint64_t>(n));
  EXPECT_EQ(c.received, static_cast<std::uint64_t>(n));

  const auto x = peer(x_);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->messages_sent, static_cast<std::uint64_t>(n));
  EXPECT_EQ(x->requests_sent, static_cast<std::uint64_t>(n));
  EXPECT_EQ(x->bytes_sent, 4u * n);
  EXPECT_EQ(x->messages_received, static_cast<std::uint64_t>(n));
  EXPECT_EQ(x->replies_received, static_cast<std::uint64_t>(n));
  EXPECT_EQ(x->bytes_received, 8u * n);
  EXPECT_FALSE(peer(y_)) << "no traffic with y, no entry";
}

TEST_F(NodeCounters, ATimeoutIsAFailureAndItsLateReplyNoRoundTrip) {
  std::optional<std::error_code> outcome;
  request(x_, "slow", "", 5ms, outcome);
  const auto ids = requests_written();  // runs the loop past the deadline
  ASSERT_EQ(ids.size(), 1u);
  ASSERT_EQ(outcome, errc::timeout);
  auto c = core_->counters();
  EXPECT_EQ(c.failed_requests.timeout, 1u);
  EXPECT_EQ(c.failed_requests.total(), 1u);
  EXPECT_EQ(c.request_latency.count, 0u);

  reply(x_, ids[0], errc::ok, "late");
  c = core_->counters();
  EXPECT_EQ(c.late_replies, 1u);
  EXPECT_EQ(c.request_latency.count, 0u);
  EXPECT_EQ(c.failed_requests.total(), 1u);
}

TEST_F(NodeCounters, AMastersAnswerIsAFailureByItsErrorNotTrafficWithThePeer) {
  std::optional<std::error_code> outcome;
  request(x_, "ping", "", 10s, outcome);
  const auto ids = requests_written();
  ASSERT_EQ(ids.size(), 1u);
  reply(x_, ids[0], errc::overloaded, "queue full", wire::flag_from_master);
  ASSERT_EQ(outcome, errc::overloaded);
  const auto c = core_->counters();
  EXPECT_EQ(c.failed_requests.overloaded, 1u);
  EXPECT_EQ(c.request_latency.count, 0u);
  EXPECT_EQ(peer(x_)->requests_sent, 1u);
  EXPECT_EQ(peer(x_)->messages_received, 0u);
  EXPECT_EQ(peer(x_)->replies_received, 0u);
}

TEST_F(NodeCounters, RequestsRefusedAtTheCallAreCountedByError) {
  std::optional<std::error_code> unknown, too_large, empty;
  request(node_id::random(), "ping", "", 10s, unknown);
  request(x_, std::string(limits::max_command_size + 1, 'c'), "", 10s, too_large);
  request(x_, "", "", 10s, empty);
  EXPECT_TRUE(requests_written().empty());
  EXPECT_EQ(unknown, errc::no_such_node);
  EXPECT_EQ(too_large, errc::too_large);
  EXPECT_TRUE(empty && *empty);
  const auto f = core_->counters().failed_requests;
  EXPECT_EQ(f.no_such_node, 1u);
  EXPECT_EQ(f.too_large, 1u);
  EXPECT_EQ(f.other, 1u);
  EXPECT_EQ(f.total(), 3u);
  EXPECT_FALSE(peer(x_));
}

TEST_F(NodeCounters, TrafficIsCountedPerPeerBothWays) {
  for (const char* c : {"a", "b", "c"}) ASSERT_FALSE(core_->send(x_, c, as_bytes("xy")));
  ASSERT_FALSE(core_->broadcast("all", as_bytes("abc")));
  written();
  feed([&](auto& out) {  // a batch of three from y
    wire::append_message(out, wire::frame_type::send, y_, core_->id(), 0, 0, "m", as_bytes("1"),
                         limits::default_max_frame_size);
    wire::append_to_batch(out, 0, "m", as_bytes("22"), 0);
    wire::append_to_batch(out, 0, "m", as_bytes("333"), 0);
  });
  feed([&](auto& out) {
    wire::append_message(out, wire::frame_type::broadcast, x_, node_id{}, 0, 0, "m",
                         as_bytes("four"), limits::default_max_frame_size);
  });

  const auto x = peer(x_);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->messages_sent, 4u);  // three sends (one batch) and the broadcast
  EXPECT_EQ(x->bytes_sent, 3u * 2 + 3);
  EXPECT_EQ(x->requests_sent, 0u);
  EXPECT_EQ(x->messages_received, 1u);
  EXPECT_EQ(x->bytes_received, 4u);
  const auto y = peer(y_);
  ASSERT_TRUE(y);
  EXPECT_EQ(y->messages_sent, 1u);  // the broadcast
  EXPECT_EQ(y->bytes_sent, 3u);
  EXPECT_EQ(y->messages_received, 3u);
  EXPECT_EQ(y->bytes_received, 6u);
  EXPECT_EQ(core_->counters().sent, 4u);  // a broadcast counts once here
  EXPECT_EQ(core_->counters().received, 4u);
}

TEST_F(NodeCounters, APeerThatLeavesFailsItsRequestsAndLosesItsEntry) {
  ASSERT_FALSE(core_->send(x_, "a", {}));
  std::optional<std::error_code> outcome;
  request(y_, "hold", "", 10s, outcome);
  ASSERT_EQ(requests_written().size(), 1u);
  ASSERT_TRUE(peer(y_));

  const std::vector<wire::node_down_entry> gone = {{y_, leave_reason::exited, 0}};
  feed([&](auto& out) { wire::append_nodes_down(out, gone); });
  ASSERT_EQ(outcome, errc::node_left);
  EXPECT_EQ(core_->counters().failed_requests.node_left, 1u);
  EXPECT_FALSE(peer(y_));
  ASSERT_TRUE(peer(x_)) << "the others stay";
  EXPECT_EQ(core_->peer_counters().size(), 1u);
}

TEST_F(NodeCounters, AReplyToARequesterThatLeftIsDroppedAndMakesNoEntry) {
  std::vector<responder> held;
  core_->set_handler("hold", [&](const message&, responder r) { held.push_back(std::move(r)); });
  feed([&](auto& out) {
    wire::append_message(out, wire::frame_type::request, y_, core_->id(), 7, 10'000, "hold", {},
                         limits::default_max_frame_size);
  });
  ASSERT_EQ(held.size(), 1u);
  written();
  const std::vector<wire::node_down_entry> gone = {{y_, leave_reason::exited, 0}};
  feed([&](auto& out) { wire::append_nodes_down(out, gone); });
  EXPECT_FALSE(peer(y_));

  held[0].reply("too late");
  EXPECT_TRUE(written().empty()) << "nobody waits for it";
  EXPECT_FALSE(peer(y_)) << "a node that left gets no entry back";
}

TEST_F(NodeCounters, StoppingFailsPendingRequestsAsShuttingDown) {
  std::optional<std::error_code> outcome;
  request(x_, "hold", "", 10s, outcome);
  ASSERT_EQ(requests_written().size(), 1u);
  core_->stop();
  ASSERT_EQ(outcome, errc::shutting_down);
  EXPECT_EQ(core_->counters().failed_requests.shutting_down, 1u);
  EXPECT_EQ(core_->counters().request_latency.count, 0u);
}

}  // namespace
}  // namespace galaxies::detail
