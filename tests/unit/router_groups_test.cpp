// Groups at the master (docs/protocol.md §4.3, §5.1): a node's joins and leaves told to every
// local node and every peer, in order with its messages; a peer's told to local nodes only; each
// speaker trusted only for its own nodes and within max_groups_per_node; snapshots on a new link
// and a new node; and publish handed to the listed local nodes, or to the named host's link.
#include <gtest/gtest.h>

#include <algorithm>

#include "galaxies/node.hpp"
#include "router_test_steps.hpp"
#include "support/router_harness.hpp"
#include "wire/groups.hpp"

namespace galaxies::test {
namespace {

frame_bytes groups_frame(bool up, const std::vector<wire::group_entry>& entries,
                         bool snapshot = false) {
  frame_bytes out;
  if (up)
    wire::append_groups_up(out, entries, snapshot);
  else
    wire::append_groups_down(out, entries);
  return out;
}

frame_bytes publish(const node_id& src, const host_id& dst, std::string_view group,
                    const std::vector<node_id>& members, std::string_view payload = "p") {
  frame_bytes out;
  EXPECT_FALSE(wire::append_publish(out, src, dst, "cmd", group, members, as_bytes(payload),
                                    limits::default_max_frame_size));
  return out;
}

// Every membership of groups told to `end` (up, and then not down), as "node-byte:group", and
// whether a snapshot completed.
struct told_groups {
  std::vector<std::string> live;
  int snapshots = 0;
};
told_groups groups_told(const fake_end& end) {
  told_groups out;
  for (const auto& f : end.frames()) {
    std::vector<wire::group_entry> entries;
    bool snapshot = false;
    if (f.header.type == wire::frame_type::groups_up) {
      EXPECT_FALSE(wire::decode_groups_up(f, entries, snapshot));
      for (const auto& e : entries)
        out.live.push_back(std::to_string(e.node.value().bytes()[15]) + ":" + e.name);
      out.snapshots += snapshot;
    } else if (f.header.type == wire::frame_type::groups_down) {
      EXPECT_FALSE(wire::decode_groups_down(f, entries));
      for (const auto& e : entries)
        std::erase(out.live, std::to_string(e.node.value().bytes()[15]) + ":" + e.name);
    }
  }
  std::sort(out.live.begin(), out.live.end());
  return out;
}

// The publish frames `end` received, decoded: the payloads in order.
std::vector<std::string> publishes(const fake_end& end) {
  std::vector<std::string> out;
  for (const auto& f : end.frames()) {
    if (f.header.type != wire::frame_type::publish) continue;
    wire::publish_view p;
    EXPECT_FALSE(wire::decode_publish(f, p, 4096));
    out.emplace_back(as_text(p.payload));
  }
  return out;
}

// Where the first frame of `type` is among what `end` received (-1: none).
int position(const fake_end& end, wire::frame_type type) {
  const auto frames = end.frames();
  for (std::size_t i = 0; i < frames.size(); ++i)
    if (frames[i].header.type == type) return static_cast<int>(i);
  return -1;
}

class RouterGroups : public ::testing::Test {
 protected:
  void SetUp() override {
    harness_options o;
    o.limits.max_groups_per_node = 2;
    h_ = std::make_unique<router_harness>(o);
    a_end_ = &attached_node(*h_, a_);
    b_end_ = &attached_node(*h_, b_);
    p1_end_ = &linked_host(*h_, p1_, {x1_});
    p2_end_ = &linked_host(*h_, p2_, {x2_});
    ASSERT_TRUE(h_->run_until([&] { return nodes_seen(*a_end_).size() == 3; }));
    for (fake_end* e : {a_end_, b_end_, p1_end_, p2_end_}) e->forget_received();
  }

  const host_id& self() const { return h_->options().self; }

  std::unique_ptr<router_harness> h_;
  const node_id a_ = node_named(0x11, 1);
  const node_id b_ = node_named(0x11, 2);
  const host_id p1_ = host_named(1);
  const host_id p2_ = host_named(2);
  const node_id x1_ = node_named(0x41, 3);
  const node_id x2_ = node_named(0x42, 4);
  fake_end* a_end_ = nullptr;
  fake_end* b_end_ = nullptr;
  fake_end* p1_end_ = nullptr;
  fake_end* p2_end_ = nullptr;
};

TEST_F(RouterGroups, AJoinGoesToEveryLocalNodeAndPeerAheadOfWhatTheJoinerPublishes) {
  a_end_->send(groups_frame(true, {{a_, "g"}}));
  a_end_->send(publish(a_, self(), "g", {b_}, "local"));
  a_end_->send(publish(a_, p1_, "g", {x1_}, "far"));
  ASSERT_TRUE(h_->run_until([&] {
    return publishes(*b_end_).size() == 1 && publishes(*p1_end_).size() == 1 &&
           !groups_told(*p2_end_).live.empty() && !groups_told(*a_end_).live.empty();
  }));
  for (fake_end* e : {a_end_, b_end_, p1_end_, p2_end_})
    EXPECT_EQ(groups_told(*e).live, std::vector<std::string>{"1:g"});
  EXPECT_LT(position(*b_end_, wire::frame_type::groups_up),
            position(*b_end_, wire::frame_type::publish));
  EXPECT_LT(position(*p1_end_, wire::frame_type::groups_up),
            position(*p1_end_, wire::frame_type::publish));
  EXPECT_EQ(publishes(*b_end_), std::vector<std::string>{"local"});
  EXPECT_EQ(publishes(*p1_end_), std::vector<std::string>{"far"});
  h_->run_for(20ms);
  EXPECT_TRUE(publishes(*p2_end_).empty()) << "a host not named got the frame";
  EXPECT_TRUE(publishes(*a_end_).empty()) << "the publisher got its own frame";
}

TEST_F(RouterGroups, ALeaveFollowsTheLeaversLastMessage) {
  a_end_->send(groups_frame(true, {{a_, "g"}}));
  a_end_->send(publish(a_, self(), "g", {b_}, "last"));
  a_end_->send(groups_frame(false, {{a_, "g"}}));
  ASSERT_TRUE(h_->run_until([&] {
    return position(*b_end_, wire::frame_type::groups_down) >= 0 &&
           position(*p1_end_, wire::frame_type::groups_down) >= 0;
  }));
  EXPECT_LT(position(*b_end_, wire::frame_type::publish),
            position(*b_end_, wire::frame_type::groups_down));
  for (fake_end* e : {a_end_, b_end_, p1_end_, p2_end_}) EXPECT_TRUE(groups_told(*e).live.empty());
}

TEST_F(RouterGroups, RepeatedJoinsAndUnknownLeavesAreNotToldOn) {
  a_end_->send(groups_frame(true, {{a_, "g"}}));
  a_end_->send(groups_frame(true, {{a_, "g"}}));
  a_end_->send(groups_frame(false, {{a_, "other"}}));
  a_end_->send(publish(a_, self(), "g", {b_}, "marker"));
  ASSERT_TRUE(h_->run_until([&] { return publishes(*b_end_).size() == 1; }));
  EXPECT_EQ(b_end_->count(wire::frame_type::groups_up), 1u);
  EXPECT_EQ(b_end_->count(wire::frame_type::groups_down), 0u);
}

TEST_F(RouterGroups, APeersChangesGoToLocalNodesOnly) {
  p1_end_->send(groups_frame(true, {{x1_, "g"}}));
  ASSERT_TRUE(h_->run_until(
      [&] { return !groups_told(*a_end_).live.empty() && !groups_told(*b_end_).live.empty(); }));
  EXPECT_EQ(groups_told(*a_end_).live, std::vector<std::string>{"3:g"});
  p1_end_->send(groups_frame(false, {{x1_, "g"}}));
  ASSERT_TRUE(h_->run_until([&] { return groups_told(*b_end_).live.empty(); }));
  h_->run_for(20ms);
  EXPECT_EQ(p2_end_->count(wire::frame_type::groups_up), 0u) << "relayed to another peer";
  EXPECT_EQ(p1_end_->count(wire::frame_type::groups_up), 0u) << "told back to its sender";
}

TEST_F(RouterGroups, ANodeAnnouncingAnotherNodesGroupsIsClosed) {
  a_end_->send(groups_frame(true, {{b_, "g"}}));
  ASSERT_TRUE(h_->run_until([&] { return a_end_->closed(); }));
  EXPECT_EQ(b_end_->count(wire::frame_type::groups_up), 0u);
  EXPECT_FALSE(b_end_->closed());
}

TEST_F(RouterGroups, APeerAnnouncingGroupsOfANodeNotItsOwnIsClosed) {
  p1_end_->send(groups_frame(true, {{x2_, "g"}}));
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  p2_end_->send(groups_frame(false, {{a_, "g"}}));
  ASSERT_TRUE(h_->run_until([&] { return p2_end_->closed(); }));
  EXPECT_EQ(a_end_->count(wire::frame_type::groups_up), 0u);
}

TEST_F(RouterGroups, MoreGroupsThanTheLimitCloseTheAnnouncer) {
  a_end_->send(groups_frame(true, {{a_, "g1"}, {a_, "g2"}}));
  a_end_->send(groups_frame(true, {{a_, "g2"}}));  // already in it: no third
  a_end_->send(publish(a_, self(), "g1", {b_}, "marker"));
  ASSERT_TRUE(h_->run_until([&] { return publishes(*b_end_).size() == 1; }));
  EXPECT_FALSE(a_end_->closed());
  a_end_->send(groups_frame(true, {{a_, "g3"}}));
  ASSERT_TRUE(h_->run_until([&] { return a_end_->closed(); }));

  p1_end_->send(groups_frame(true, {{x1_, "g1"}, {x1_, "g2"}, {x1_, "g3"}}));
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  EXPECT_FALSE(p2_end_->closed());
}

TEST_F(RouterGroups, AMalformedGroupsFrameClosesItsConnection) {
  frame_bytes bad = groups_frame(true, {{a_, "g"}});
  bad.back() = std::byte{0x07};  // a control character in the name
  a_end_->send(bad);
  ASSERT_TRUE(h_->run_until([&] { return a_end_->closed(); }));
  p1_end_->send(bad);
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  EXPECT_FALSE(b_end_->closed());
}

TEST_F(RouterGroups, APublishReachesEachListedLocalNodeOnce) {
  const node_id c = node_named(0x11, 5);
  fake_end& c_end = attached_node(*h_, c);
  a_end_->send(publish(a_, self(), "g", {b_, c, x1_}, "one"));
  ASSERT_TRUE(h_->run_until(
      [&] { return publishes(*b_end_).size() == 1 && publishes(c_end).size() == 1; }));
  h_->run_for(20ms);
  EXPECT_EQ(publishes(*b_end_).size(), 1u);
  EXPECT_TRUE(publishes(*p1_end_).empty()) << "a far node listed for our host went to its host";
  EXPECT_FALSE(a_end_->closed());
}

TEST_F(RouterGroups, APublishFromAPeerReachesTheListedLocalNodes) {
  p1_end_->send(publish(x1_, self(), "g", {a_, b_, x2_}, "hello"));
  ASSERT_TRUE(h_->run_until(
      [&] { return publishes(*a_end_).size() == 1 && publishes(*b_end_).size() == 1; }));
  h_->run_for(20ms);
  EXPECT_TRUE(publishes(*p2_end_).empty()) << "a listed far node got a relayed copy";
  EXPECT_FALSE(p1_end_->closed());
}

TEST_F(RouterGroups, APeerAskingUsToRelayAPublishIsClosed) {
  p1_end_->send(publish(x1_, p2_, "g", {x2_}));
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  EXPECT_TRUE(publishes(*p2_end_).empty());
}

TEST_F(RouterGroups, APeerPublishingForANodeItNeverAnnouncedIsClosed) {
  p1_end_->send(publish(x2_, self(), "g", {a_}));
  ASSERT_TRUE(h_->run_until([&] { return p1_end_->closed(); }));
  EXPECT_TRUE(publishes(*a_end_).empty());
}

TEST_F(RouterGroups, ALocalNodesBadPublishesCloseItOrAreDropped) {
  // To a host that left (or never was): dropped, as a message to a node that left is.
  a_end_->send(publish(a_, host_named(9), "g", {node_named(0x49, 1)}));
  a_end_->send(publish(a_, self(), "g", {b_}, "after"));
  ASSERT_TRUE(h_->run_until([&] { return publishes(*b_end_).size() == 1; }));
  EXPECT_FALSE(a_end_->closed());
  // Forged source, then a repeated member: its connection closes.
  b_end_->send(publish(a_, self(), "g", {node_named(0x11, 9)}));
  ASSERT_TRUE(h_->run_until([&] { return b_end_->closed(); }));
  frame_bytes twice = publish(a_, self(), "g", {b_, node_named(0x11, 9)});
  std::copy_n(twice.end() - 1 - 32, 16, twice.end() - 1 - 16);  // the second member = the first
  a_end_->send(twice);
  ASSERT_TRUE(h_->run_until([&] { return a_end_->closed(); }));
}

TEST_F(RouterGroups, ANewPeerGetsOurNodesGroupsAfterTheirNodes) {
  a_end_->send(groups_frame(true, {{a_, "g"}}));
  p1_end_->send(groups_frame(true, {{x1_, "far"}}));
  ASSERT_TRUE(h_->run_until([&] { return groups_told(*b_end_).live.size() == 2; }));
  const host_id p3 = host_named(3);
  fake_end& p3_end = h_->connect_host();
  dial_in(*h_, p3_end, p3, std::nullopt);
  ASSERT_TRUE(h_->run_until([&] { return groups_told(p3_end).snapshots == 1; }));
  EXPECT_EQ(groups_told(p3_end).live, std::vector<std::string>{"1:g"}) << "only our own nodes'";
  EXPECT_LT(position(p3_end, wire::frame_type::nodes_up),
            position(p3_end, wire::frame_type::groups_up));
}

TEST_F(RouterGroups, ANewNodeGetsEveryGroupAndIsToldTheLimits) {
  a_end_->send(groups_frame(true, {{a_, "g"}}));
  p1_end_->send(groups_frame(true, {{x1_, "far"}}));
  ASSERT_TRUE(h_->run_until([&] { return groups_told(*b_end_).live.size() == 2; }));
  const node_id d = node_named(0x11, 7);
  fake_end& d_end = attached_node(*h_, d);
  ASSERT_TRUE(h_->run_until([&] { return groups_told(d_end).snapshots == 1; }));
  EXPECT_EQ(groups_told(d_end).live, (std::vector<std::string>{"1:g", "3:far"}));
  EXPECT_LT(position(d_end, wire::frame_type::nodes_up),
            position(d_end, wire::frame_type::groups_up));
  const auto w = welcome_of(d_end);
  ASSERT_TRUE(w && w->group_limits);
  EXPECT_EQ(w->group_limits->max_groups_per_node, 2u);
  EXPECT_EQ(w->group_limits->max_group_members, limits_options{}.max_group_members);
}

TEST_F(RouterGroups, ADepartedNodesGroupsLeaveWithIt) {
  a_end_->send(groups_frame(true, {{a_, "g"}}));
  p1_end_->send(groups_frame(true, {{x1_, "far"}}));
  ASSERT_TRUE(h_->run_until([&] { return groups_told(*b_end_).live.size() == 2; }));
  a_end_->close();
  p1_end_->close();
  ASSERT_TRUE(h_->run_until([&] { return b_end_->count(wire::frame_type::nodes_down) >= 2; }));
  EXPECT_EQ(b_end_->count(wire::frame_type::groups_down), 0u) << "nodes_down says it";
  fake_end& d_end = attached_node(*h_, node_named(0x11, 7));
  ASSERT_TRUE(h_->run_until([&] { return groups_told(d_end).snapshots == 1; }));
  EXPECT_TRUE(groups_told(d_end).live.empty());
}

TEST_F(RouterGroups, AHostThatComesBackTellsItsGroupsAgainInItsSnapshot) {
  p1_end_->send(groups_frame(true, {{x1_, "far"}}));
  ASSERT_TRUE(h_->run_until([&] { return groups_told(*a_end_).live.size() == 1; }));
  p1_end_->close();
  ASSERT_TRUE(h_->run_until([&] { return linked_nodes(h_->router(), p1_) == -1; }));
  // As after a partition heals: the same host, its same node, its groups in its snapshot.
  fake_end& again = h_->connect_host();
  dial_in(*h_, again, p1_, std::nullopt);
  again.send(nodes_up({{x1_, p1_, 1000}}));
  again.send(groups_frame(true, {{x1_, "far"}, {x1_, "near"}}, true));
  ASSERT_TRUE(h_->run_until([&] { return a_end_->count(wire::frame_type::groups_up) == 2; }));
  // a saw x1 leave (its nodes_down says its groups went too), then come back with both groups.
  const auto frames = a_end_->frames();
  int down = -1, up_again = -1;
  for (int i = 0; i < static_cast<int>(frames.size()); ++i) {
    if (frames[i].header.type == wire::frame_type::nodes_down && down < 0) down = i;
    if (frames[i].header.type == wire::frame_type::groups_up) up_again = i;
  }
  ASSERT_GE(down, 0);
  EXPECT_LT(down, up_again);
  std::vector<wire::group_entry> entries;
  bool snapshot = false;
  ASSERT_FALSE(wire::decode_groups_up(frames[up_again], entries, snapshot));
  EXPECT_EQ(entries, (std::vector<wire::group_entry>{{x1_, "far"}, {x1_, "near"}}));
  // Whoever attaches now gets x1's groups once.
  fake_end& d_end = attached_node(*h_, node_named(0x11, 7));
  ASSERT_TRUE(h_->run_until([&] { return groups_told(d_end).snapshots == 1; }));
  EXPECT_EQ(groups_told(d_end).live, (std::vector<std::string>{"3:far", "3:near"}));
}

// What operators see (docs/operating.md): the groups in all, the largest with their members in the
// cluster and here, and each local node's own.
TEST_F(RouterGroups, TheStatusCountsTheGroupsAndNamesTheLargest) {
  a_end_->send(groups_frame(true, {{a_, "g1"}, {a_, "g2"}}));
  b_end_->send(groups_frame(true, {{b_, "g1"}}));
  p1_end_->send(groups_frame(true, {{x1_, "g1"}}));
  p2_end_->send(groups_frame(true, {{x2_, "g2"}}));
  const auto groups = [&] { return h_->router().status()["groups"]; };
  ASSERT_TRUE(h_->run_until([&] { return groups()["memberships"] == 5; }));
  EXPECT_EQ(groups()["count"], 2);
  const auto largest = groups()["largest"];
  ASSERT_EQ(largest.size(), 2u);
  EXPECT_EQ(largest[0]["group"], "g1");
  EXPECT_EQ(largest[0]["members"], 3);
  EXPECT_EQ(largest[0]["local"], 2);
  EXPECT_EQ(largest[1]["group"], "g2");
  EXPECT_EQ(largest[1]["members"], 2);
  EXPECT_EQ(largest[1]["local"], 1);
  const auto groups_of = [&](const node_id& id) {
    const nlohmann::json status = h_->router().status();
    for (const auto& n : status["nodes"])
      if (n["node"] == id.to_string()) return n["groups"];
    return nlohmann::json();
  };
  EXPECT_EQ(groups_of(a_), (nlohmann::json{"g1", "g2"}));
  EXPECT_EQ(groups_of(b_), (nlohmann::json{"g1"}));

  a_end_->send(groups_frame(false, {{a_, "g2"}}));
  p2_end_->send(groups_frame(false, {{x2_, "g2"}}));
  ASSERT_TRUE(h_->run_until([&] { return groups()["memberships"] == 3; }));
  EXPECT_EQ(groups()["count"], 1);
  EXPECT_EQ(groups_of(a_), (nlohmann::json{"g1"}));
}

}  // namespace
}  // namespace galaxies::test
