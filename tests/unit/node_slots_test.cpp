// A node's view of worker slots (docs/protocol.md §5) and its drain when its master stops (§5.2).
// The test plays the node's master, frame by frame.
#include <gtest/gtest.h>

#include <optional>
#include <unordered_set>
#include <vector>

#include "node_core_harness.hpp"
#include "wire/groups.hpp"
#include "wire/message.hpp"

namespace galaxies::detail {
namespace {

using namespace std::chrono_literals;

std::size_t count(const std::vector<std::vector<std::byte>>& frames, wire::frame_type type) {
  std::size_t n = 0;
  for (const auto& f : frames)
    if (wire::frame_parser().parse(f).frame.header.type == type) ++n;
  return n;
}

class NodeSlots : public test::node_core_harness {
 protected:
  void up(const node_id& n, const host_id& h, std::uint32_t slot) {
    const std::vector<wire::node_entry> nodes = {{n, h, 7, slot}};
    feed([&](auto& out) { wire::append_nodes_up(out, nodes, false); });
  }
  void down(const node_id& n) {
    const std::vector<wire::node_down_entry> nodes = {{n, leave_reason::exited, 9}};
    feed([&](auto& out) { wire::append_nodes_down(out, nodes); });
  }
  void stopping(std::uint32_t grace_ms) {
    feed([&](auto& out) { wire::append_stopping(out, grace_ms); });
  }
};

TEST_F(NodeSlots, AnAttachedNodeFillsNoSlot) {
  EXPECT_EQ(core_->slot(), std::nullopt);
  for (const auto& n : core_->nodes()) EXPECT_EQ(n.slot, std::nullopt) << "announced without";
}

TEST_F(NodeSlots, EachNodeComesWithItsSlotAndIsFoundByIt) {
  std::vector<node_info> joined;
  core_->events().node_joined = [&](const node_info& n) { joined.push_back(n); };
  const host_id other = host_id::random();
  const node_id z = node_id::random();
  up(z, other, 3);
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(joined[0].slot, (slot{other, 3}));
  EXPECT_EQ(core_->node_in(slot{other, 3})->id, z);
  EXPECT_EQ(core_->node_in(slot{host_, 3}), std::nullopt) << "a slot is a host's";

  // Its respawn: the old node leaves, a new one takes the slot back.
  down(z);
  EXPECT_EQ(core_->node_in(slot{other, 3}), std::nullopt);
  const node_id z2 = node_id::random();
  up(z2, other, 3);
  EXPECT_TRUE(core_->ready()) << "a slot freed by a departure is free";
  EXPECT_EQ(core_->node_in(slot{other, 3})->id, z2);
  EXPECT_EQ(joined.back().slot, joined.front().slot);
}

TEST_F(NodeSlots, TwoLiveNodesInOneSlotAreAProtocolError) {
  std::optional<std::error_code> disconnected;
  core_->events().disconnected = [&](std::error_code ec, std::string_view) { disconnected = ec; };
  up(node_id::random(), host_, 1);
  ASSERT_FALSE(disconnected);
  up(node_id::random(), host_, 1);
  EXPECT_EQ(disconnected, make_error_code(errc::not_connected));
  EXPECT_FALSE(core_->ready());
}

TEST_F(NodeSlots, AnUpForAKnownNodeIsNoSecondClaimOnItsSlot) {
  std::optional<std::error_code> disconnected;
  core_->events().disconnected = [&](std::error_code ec, std::string_view) { disconnected = ec; };
  const node_id z = node_id::random();
  up(z, host_, 1);
  up(z, host_, 1);
  EXPECT_FALSE(disconnected);
  // The fixture stops the node after this body: its disconnect must not reach the local above.
  core_->events().disconnected = nullptr;
}

class WorkerSlot : public test::node_core_harness {
 public:
  WorkerSlot() { welcome_slot_ = 5; }
};

TEST_F(WorkerSlot, AWorkerLearnsItsSlotFromItsWelcome) {
  EXPECT_EQ(core_->slot(), (slot{host_, 5}));
}

// A member list names this node with its slot, as every other node sees it in nodes_up.
TEST_F(WorkerSlot, ItsOwnEntryAmongAGroupsMembersCarriesItsSlot) {
  std::optional<node_info> seen;
  core_->events().group_joined = [&](std::string_view, const node_info& who) { seen = who; };
  ASSERT_FALSE(core_->join("room"));
  const std::vector<wire::group_entry> echo{{core_->id(), "room"}};
  feed([&](auto& out) { wire::append_groups_up(out, echo, false); });
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->slot, (slot{host_, 5}));
  const auto members = core_->members("room");
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].slot, (slot{host_, 5}));
}

TEST_F(NodeSlots, WithoutOnStoppingTheNodeLeavesAtOnce) {
  stopping(3000);
  EXPECT_EQ(count(written(), wire::frame_type::goodbye), 1u);
  EXPECT_FALSE(core_->ready());
}

TEST_F(NodeSlots, ADrainingNodeWorksOnAndLeavesWhenDone) {
  std::vector<drain> drains;
  core_->events().stopping = [&](drain d) { drains.push_back(std::move(d)); };
  const auto before = std::chrono::steady_clock::now();
  stopping(2500);
  stopping(2500);  // a second word changes nothing
  ASSERT_EQ(drains.size(), 1u);
  EXPECT_TRUE(drains[0].pending());
  EXPECT_GE(drains[0].deadline(), before + 2500ms);
  EXPECT_LE(drains[0].deadline(), std::chrono::steady_clock::now() + 2500ms);

  // Still a member: it sends, and a request to it is answered.
  ASSERT_FALSE(core_->send(x_, "still", as_bytes("here")));
  bool answered = false;
  core_->set_handler("work", [&](const message&, responder r) {
    r.reply("ok");
    answered = true;
  });
  feed([&](auto& out) {
    wire::append_message(out, wire::frame_type::request, y_, core_->id(), 1, 1000, "work", {},
                         limits::default_max_frame_size);
  });
  EXPECT_TRUE(answered);
  auto frames = written();
  EXPECT_EQ(count(frames, wire::frame_type::send), 1u);
  EXPECT_EQ(count(frames, wire::frame_type::reply), 1u);
  EXPECT_EQ(count(frames, wire::frame_type::goodbye), 0u);
  EXPECT_TRUE(core_->ready());

  drains[0].done();
  EXPECT_FALSE(drains[0].pending());
  EXPECT_EQ(count(written(), wire::frame_type::goodbye), 1u);
  EXPECT_FALSE(core_->ready());
}

TEST_F(NodeSlots, ADrainDroppedUnfinishedIsDone) {
  core_->events().stopping = [&](drain) {};
  stopping(2500);
  EXPECT_EQ(count(written(), wire::frame_type::goodbye), 1u);
}

TEST_F(NodeSlots, ADrainDoneAfterTheNodeStoppedDoesNothingMore) {
  std::optional<drain> kept;
  core_->events().stopping = [&](drain d) { kept = std::move(d); };
  stopping(2500);
  core_->stop();
  EXPECT_EQ(count(written(), wire::frame_type::goodbye), 1u);
  kept->done();
  EXPECT_FALSE(kept->pending());
  EXPECT_EQ(count(written(), wire::frame_type::goodbye), 0u);
}

}  // namespace
}  // namespace galaxies::detail
