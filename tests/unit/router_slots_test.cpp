// Worker slots at the master (docs/protocol.md §5): a worker learns its slot, every node and peer
// sees it, a slot has one live node at a time; and the word a stopping master sends its workers
// (§5.2). The test plays the workers, an attached node and a peer host over socketpairs.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "router_test_steps.hpp"
#include "support/router_harness.hpp"

namespace galaxies::test {
namespace {

// Every entry announced up to `end`, in order.
std::vector<wire::node_entry> entries_seen(const fake_end& end) {
  std::vector<wire::node_entry> out;
  for (const auto& f : end.frames()) {
    std::vector<wire::node_entry> entries;
    bool snapshot = false;
    if (f.header.type == wire::frame_type::nodes_up && !wire::decode_nodes_up(f, entries, snapshot))
      out.insert(out.end(), entries.begin(), entries.end());
  }
  return out;
}

std::optional<wire::node_entry> entry_of(const fake_end& end, const node_id& n) {
  for (const auto& e : entries_seen(end))
    if (e.node == n) return e;
  return std::nullopt;
}

class RouterSlots : public ::testing::Test {
 protected:
  // A worker process of ours, as the supervisor starts it: hello (role worker), then registered.
  fake_end& registered_worker(const node_id& n, pid_t pid, std::uint32_t slot) {
    fake_end& end = h_.connect_worker(pid, slot);
    end.send(node_hello(n, h_.options().cluster, wire::role::worker));
    EXPECT_TRUE(h_.run_until([&] {
      const auto f = end.last(wire::frame_type::nodes_up);
      return f && (f->header.flags & wire::flag_snapshot);
    })) << "worker in slot "
        << slot << " not registered";
    return end;
  }

  router_harness h_;
  const host_id p_ = host_named(1);
  const node_id x_ = node_named(0x41, 1);
};

TEST_F(RouterSlots, AWorkerLearnsItsSlotAndEveryNodeAndPeerSeesIt) {
  fake_end& peer = linked_host(h_, p_, {x_});
  const node_id w = node_named(0x11, 1);
  const node_id a = node_named(0x11, 2);
  fake_end& w_end = registered_worker(w, 70001, 2);
  fake_end& a_end = attached_node(h_, a);

  ASSERT_TRUE(welcome_of(w_end).has_value());
  EXPECT_EQ(welcome_of(w_end)->slot, 2u);
  ASSERT_TRUE(welcome_of(a_end).has_value());
  EXPECT_EQ(welcome_of(a_end)->slot, std::nullopt) << "an attached node fills no slot";

  ASSERT_TRUE(h_.run_until([&] { return entry_of(peer, a).has_value(); }));
  EXPECT_EQ(entry_of(peer, w)->slot, 2u);
  EXPECT_EQ(entry_of(peer, a)->slot, wire::no_slot);
  // The attached node's snapshot names the worker's slot, and the worker's its own host's.
  EXPECT_EQ(entry_of(a_end, w)->slot, 2u);
  EXPECT_EQ(entry_of(w_end, x_)->slot, wire::no_slot) << "the peer announced x without a slot";

  // The status shows each node's slot, ours and the peer's alike.
  const nlohmann::json status = h_.router().status();
  int with_slot = 0;
  for (const auto& n : status["nodes"])
    if (n["node"] == w.to_string()) {
      EXPECT_EQ(n.value("slot", -1), 2);
      ++with_slot;
    } else {
      EXPECT_FALSE(n.contains("slot")) << n.dump();
    }
  EXPECT_EQ(with_slot, 1);
}

TEST_F(RouterSlots, ASlotsNextWorkerIsAnnouncedAfterItsLastOneHasGone) {
  fake_end& peer = linked_host(h_, p_, {x_});
  fake_end& watcher = attached_node(h_, node_named(0x11, 9));
  const node_id old_worker = node_named(0x11, 1);
  const node_id new_worker = node_named(0x11, 2);
  // The old worker's channel stays open (a child it left behind holds it) when the supervisor,
  // having reaped it, starts the slot's next worker.
  fake_end& old_end = registered_worker(old_worker, 70001, 0);
  registered_worker(new_worker, 70002, 0);

  for (fake_end* end : {&peer, &watcher}) {
    ASSERT_TRUE(h_.run_until([&] {
      const auto live = nodes_seen(*end);
      return std::ranges::count(live, new_worker) == 1 && std::ranges::count(live, old_worker) == 0;
    }));
    // Down before up, in that order on the connection: no receiver ever sees two in slot 0.
    int down_at = -1;
    int up_at = -1;
    int i = 0;
    for (const auto& f : end->frames()) {
      ++i;
      if (f.header.type == wire::frame_type::nodes_down) {
        std::vector<wire::node_down_entry> downs;
        ASSERT_FALSE(wire::decode_nodes_down(f, downs));
        for (const auto& d : downs)
          if (d.node == old_worker) {
            down_at = i;
            EXPECT_EQ(d.reason, leave_reason::exited);
          }
      }
      if (f.header.type == wire::frame_type::nodes_up) {
        std::vector<wire::node_entry> ups;
        bool snapshot = false;
        ASSERT_FALSE(wire::decode_nodes_up(f, ups, snapshot));
        for (const auto& u : ups)
          if (u.node == new_worker) up_at = i;
      }
    }
    EXPECT_GT(down_at, 0);
    EXPECT_GT(up_at, down_at);
  }
  EXPECT_FALSE(peer.closed()) << "the peer saw two live nodes in one slot";
  EXPECT_TRUE(h_.run_until([&] { return old_end.closed(); })) << "the old channel is closed";
}

TEST_F(RouterSlots, APeersSecondLiveNodeInASlotClosesItsLink) {
  fake_end& peer = linked_host(h_, p_, {});
  peer.send(nodes_up({{node_named(0x41, 1), p_, 1, 3}}, false));
  ASSERT_TRUE(h_.run_until([&] { return linked_nodes(h_.router(), p_) == 1; }));
  peer.send(nodes_up({{node_named(0x41, 2), p_, 2, 3}}, false));
  EXPECT_TRUE(h_.run_until([&] { return peer.closed(); }));
}

TEST_F(RouterSlots, TwoNodesInOneSlotInOneFrameCloseTheLink) {
  fake_end& peer = linked_host(h_, p_, {});
  peer.send(nodes_up({{node_named(0x41, 1), p_, 1, 0}, {node_named(0x41, 2), p_, 2, 0}}, false));
  EXPECT_TRUE(h_.run_until([&] { return peer.closed(); }));
}

TEST_F(RouterSlots, APeersSlotIsFreeAgainOnceItsNodeHasGone) {
  fake_end& peer = linked_host(h_, p_, {});
  fake_end& watcher = attached_node(h_, node_named(0x11, 9));
  const node_id first = node_named(0x41, 1);
  const node_id second = node_named(0x41, 2);
  peer.send(nodes_up({{first, p_, 1, 3}}, false));
  peer.send(nodes_down({first}, leave_reason::exited));
  peer.send(nodes_up({{second, p_, 2, 3}}, false));
  ASSERT_TRUE(h_.run_until([&] { return entry_of(watcher, second).has_value(); }));
  EXPECT_EQ(entry_of(watcher, second)->slot, 3u);
  EXPECT_FALSE(peer.closed());
  EXPECT_EQ(linked_nodes(h_.router(), p_), 1);
}

TEST_F(RouterSlots, AStoppingMasterTellsEachRegisteredWorkerItsGrace) {
  const node_id w = node_named(0x11, 1);
  const node_id a = node_named(0x11, 2);
  fake_end& w_end = registered_worker(w, 70001, 0);
  h_.connect_worker(70002, 1);  // started, no hello yet
  fake_end& a_end = attached_node(h_, a);
  h_.run_for(std::chrono::milliseconds(20));

  EXPECT_TRUE(h_.router().tell_stopping(70001, std::chrono::milliseconds(2500)));
  EXPECT_FALSE(h_.router().tell_stopping(70002, std::chrono::milliseconds(2500)))
      << "a worker in its handshake is stopped by a signal instead";
  EXPECT_FALSE(h_.router().tell_stopping(70003, std::chrono::milliseconds(2500)));
  ASSERT_TRUE(h_.run_until([&] { return w_end.count(wire::frame_type::stopping) == 1; }));
  EXPECT_EQ(wire::decode_stopping(*w_end.last(wire::frame_type::stopping)), 2500u);
  EXPECT_EQ(a_end.count(wire::frame_type::stopping), 0u) << "attached nodes are not drained";

  // Told once; and while it drains it is reached as before.
  EXPECT_TRUE(h_.router().tell_stopping(70001, std::chrono::milliseconds(2500)));
  a_end.send(message(wire::frame_type::send, a, w, 0, 0, "during", "drain"));
  ASSERT_TRUE(h_.run_until([&] { return !messages(w_end).empty(); }));
  EXPECT_EQ(w_end.count(wire::frame_type::stopping), 1u);
  EXPECT_FALSE(w_end.closed());
}

}  // namespace
}  // namespace galaxies::test
