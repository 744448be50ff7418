// A peer is trusted only for what it owns: sources, request ids, replies, announcements. Each case
// closes the one connection that lied (or drops the one frame), and the rest keeps flowing.
#include <gtest/gtest.h>

#include "router_test_steps.hpp"
#include "support/router_harness.hpp"
#include "wire/message_batch.hpp"

namespace galaxies::test {
namespace {

class RouterTrust : public ::testing::Test {
 protected:
  void SetUp() override {
    harness_options o;
    o.limits.max_nodes_per_host = 4;
    h_ = std::make_unique<router_harness>(o);
    a_end_ = &attached_node(*h_, a_);
    b_end_ = &attached_node(*h_, b_);
    p1_end_ = &linked_host(*h_, p1_, {x1_});
    p2_end_ = &linked_host(*h_, p2_, {x2_});
    ASSERT_TRUE(h_->run_until([&] { return nodes_seen(*a_end_).size() == 3; }));
  }

  // The messages `end` received from `src`.
  static std::size_t from(const fake_end& end, const node_id& src) {
    std::size_t n = 0;
    for (const auto& m : messages(end))
      if (m.src == src) ++n;
    return n;
  }

  // A message from x2 (another host's node) still reaches a: the lie was contained.
  void expect_others_unharmed() {
    p2_end_->send(message(wire::frame_type::send, x2_, a_, 0, 0, "still", "flowing"));
    EXPECT_TRUE(h_->run_until([&] { return from(*a_end_, x2_) >= 1; }));
    EXPECT_FALSE(a_end_->closed());
    EXPECT_FALSE(p2_end_->closed());
    EXPECT_EQ(linked_nodes(h_->router(), p2_), 1);
  }

  std::unique_ptr<router_harness> h_;
  const node_id a_ = node_named(0x11, 1);
  const node_id b_ = node_named(0x11, 2);
  const host_id p1_ = host_named(1);
  const host_id p2_ = host_named(2);
  const node_id x1_ = node_named(0x41, 1);
  const node_id x2_ = node_named(0x42, 1);
  fake_end* a_end_ = nullptr;
  fake_end* b_end_ = nullptr;
  fake_end* p1_end_ = nullptr;
  fake_end* p2_end_ = nullptr;
};

TEST_F(RouterTrust, APeerSendingForAnotherHostsNodeIsClosed) {
  p1_end_->send(message(wire::frame_type::send, x2_, a_));
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  EXPECT_EQ(from(*a_end_, x2_), 0u) << "the forged message was delivered";
  expect_others_unharmed();
}

TEST_F(RouterTrust, APeerSendingForOneOfOurNodesIsClosed) {
  // The attack that answered a request between two nodes of the same host.
  p1_end_->send(message(wire::frame_type::reply, b_, a_, 1));
  p1_end_->send(message(wire::frame_type::send, b_, a_));
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  EXPECT_EQ(from(*a_end_, b_), 0u);
  expect_others_unharmed();
}

TEST_F(RouterTrust, APeerBroadcastingForANodeItNeverAnnouncedIsClosed) {
  p1_end_->send(message(wire::frame_type::broadcast, node_named(0x41, 9), node_id{}));
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  EXPECT_TRUE(messages(*a_end_).empty());
  expect_others_unharmed();
}

TEST_F(RouterTrust, ALocalNodeForgingItsSourceIsClosed) {
  b_end_->send(message(wire::frame_type::send, a_, x1_));
  ASSERT_TRUE(h_->run_until([&] { return b_end_->closed(); }));
  EXPECT_EQ(from(*p1_end_, a_), 0u);
  expect_others_unharmed();
}

TEST_F(RouterTrust, RequestIdZeroNeverReachesANode) {
  p1_end_->send(message(wire::frame_type::request, x1_, a_, 0, 1000));
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  EXPECT_TRUE(messages(*a_end_).empty());
  b_end_->send(message(wire::frame_type::reply, b_, a_, 0));
  ASSERT_TRUE(h_->run_until([&] { return b_end_->closed(); }));
  EXPECT_TRUE(messages(*a_end_).empty());
  expect_others_unharmed();
}

// What a receiving node would have to hang up on never reaches it: the connection that carried
// it goes instead (protocol.md §4, the body).
TEST_F(RouterTrust, AMalformedBodyClosesTheConnectionItCameBy) {
  b_end_->send(message(wire::frame_type::send, b_, x1_, 0, 0, "\xff", "not UTF-8"));
  ASSERT_TRUE(h_->run_until([&] { return b_end_->closed(); }));
  EXPECT_EQ(from(*p1_end_, b_), 0u);

  frame_bytes batch = message(wire::frame_type::send, x1_, a_, 0, 0, "one", "1");
  wire::append_to_batch(batch, 0, "two", std::as_bytes(std::span("2", 1)), 0);
  batch[48] = std::byte{3};  // a count its messages do not fill
  p1_end_->send(batch);
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  for (const auto& f : a_end_->frames())
    EXPECT_NE(f.header.type, wire::frame_type::send_batch) << "the malformed batch arrived";
  expect_others_unharmed();
}

TEST_F(RouterTrust, AWellFormedBatchIsForwardedAsItCame) {
  frame_bytes batch = message(wire::frame_type::send, x2_, a_, 0, 0, "one", "1");
  wire::append_to_batch(batch, 0, "two", std::as_bytes(std::span("22", 2)), 0);
  p2_end_->send(batch);
  const auto arrived = [&] {
    for (const auto& f : a_end_->frames())
      if (f.header.type == wire::frame_type::send_batch) return true;
    return false;
  };
  ASSERT_TRUE(h_->run_until(arrived));
  for (const auto& f : a_end_->frames()) {
    if (f.header.type == wire::frame_type::send_batch) {
      EXPECT_TRUE(std::equal(f.bytes.begin(), f.bytes.end(), batch.begin(), batch.end()));
    }
  }
  expect_others_unharmed();
}

TEST_F(RouterTrust, AReplyNobodyAskedForIsDroppedAndCounted) {
  p1_end_->send(message(wire::frame_type::reply, x1_, a_, 77));
  ASSERT_TRUE(h_->run_until([&] { return h_->router().counters().unmatched_replies == 1; }));
  EXPECT_TRUE(messages(*a_end_).empty());
  EXPECT_FALSE(p1_end_->closed()) << "a late reply looks the same: dropped, not fatal";
  expect_others_unharmed();
}

TEST_F(RouterTrust, AReplyGoesThroughOnceAndOnlyFromTheNodeAsked) {
  a_end_->send(message(wire::frame_type::request, a_, x1_, 5, 10000, "ask"));
  ASSERT_TRUE(h_->run_until([&] { return from(*p1_end_, a_) == 1; }));
  // Another node of ours answers for x1: dropped.
  b_end_->send(message(wire::frame_type::reply, b_, a_, 5));
  // Another host answers for x1 (x2 is its own node, so the source check passes): dropped.
  p2_end_->send(message(wire::frame_type::reply, x2_, a_, 5));
  ASSERT_TRUE(h_->run_until([&] { return h_->router().counters().unmatched_replies == 2; }));
  p1_end_->send(message(wire::frame_type::reply, x1_, a_, 5, 0, "", "the answer"));
  ASSERT_TRUE(h_->run_until([&] { return from(*a_end_, x1_) == 1; }));
  p1_end_->send(message(wire::frame_type::reply, x1_, a_, 5, 0, "", "again"));
  ASSERT_TRUE(h_->run_until([&] { return h_->router().counters().unmatched_replies == 3; }));
  EXPECT_EQ(from(*a_end_, x1_), 1u) << "a second answer to one request";
  expect_others_unharmed();
}

TEST_F(RouterTrust, ARequestIdReusedWhileInFlightClosesTheSender) {
  p1_end_->send(message(wire::frame_type::request, x1_, a_, 9, 10000));
  p1_end_->send(message(wire::frame_type::request, x1_, b_, 9, 10000));
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  EXPECT_EQ(from(*b_end_, x1_), 0u);
  expect_others_unharmed();
}

TEST_F(RouterTrust, ARequestOverTheRequesterLimitIsAnsweredOverloaded) {
  harness_options o;
  o.limits.max_pending_requests = 2;
  router_harness h(o);
  fake_end& a = attached_node(h, a_);
  fake_end& p = linked_host(h, p1_, {x1_});
  for (std::uint64_t id = 1; id <= 3; ++id)
    a.send(message(wire::frame_type::request, a_, x1_, id, 10000));
  ASSERT_TRUE(h.run_until([&] { return from(p, a_) == 2 && from(a, x1_) == 1; }));
  const auto answer = messages(a).back();
  EXPECT_EQ(answer.request_id, 3u);
  EXPECT_EQ(static_cast<errc>(answer.word), errc::overloaded);
}

TEST_F(RouterTrust, AnnouncementsOverTheLimitCloseTheLink) {
  std::vector<wire::node_entry> four;
  for (std::uint8_t i = 2; i <= 5; ++i) four.push_back({node_named(0x41, i), p1_, 1});
  p1_end_->send(nodes_up(four, false));  // with x1: five, one more than the limit
  // The router forgets the host when its link's close is reported, a handler after the close.
  ASSERT_TRUE(
      h_->run_until([&] { return p1_end_->closed() && linked_nodes(h_->router(), p1_) == -1; }));
  expect_others_unharmed();
}

TEST_F(RouterTrust, AnnouncingAnotherHostsNodeClosesTheLink) {
  p1_end_->send(nodes_up({{node_named(0x42, 7), p2_, 1}}, false));
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  expect_others_unharmed();
}

TEST_F(RouterTrust, AnnouncingANodeServedElsewhereClosesTheLink) {
  p1_end_->send(nodes_up({{a_, p1_, 1}}, false));  // claims our own node a
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  // a was not taken over: a message to a from x2 still reaches a itself.
  expect_others_unharmed();
}

TEST_F(RouterTrust, AnnouncingAnotherHostsNodesGoneChangesNothing) {
  p1_end_->send(nodes_down({x2_}, leave_reason::graceful));
  h_->run_for(30ms);
  EXPECT_EQ(linked_nodes(h_->router(), p2_), 1);
  EXPECT_EQ(a_end_->count(wire::frame_type::nodes_down), 0u);
  expect_others_unharmed();
}

}  // namespace
}  // namespace galaxies::test

namespace galaxies::test {
namespace {

// The far master answers for a node that left (node_left), or the node's answer crossed its
// nodes_down: a reply from a node no longer known is dropped, never taken for a lie.
TEST(RouterTrustEdges, AReplyFromANodeThatHasJustLeftIsDroppedNotFatal) {
  router_harness h;
  const node_id a = node_named(0x11, 1);
  const node_id x = node_named(0x41, 1);
  const host_id p = host_named(1);
  fake_end& a_end = attached_node(h, a);
  fake_end& p_end = linked_host(h, p, {x});
  a_end.send(message(wire::frame_type::request, a, x, 5, 10000, "ask"));
  ASSERT_TRUE(h.run_until([&] { return !messages(p_end).empty(); }));
  p_end.send(nodes_down({x}, leave_reason::exited));
  p_end.send(message(wire::frame_type::reply, x, a, 5, static_cast<std::uint32_t>(errc::node_left),
                     "", "node left"));
  ASSERT_TRUE(h.run_until([&] { return h.router().counters().unmatched_replies == 1; }));
  EXPECT_FALSE(p_end.closed());
  EXPECT_EQ(linked_nodes(h.router(), p), 0);
  EXPECT_TRUE(messages(a_end).empty()) << "a learned it from nodes_down, not from a stray reply";
}

}  // namespace
}  // namespace galaxies::test
