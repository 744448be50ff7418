// Every cost bounded: connections in handshake and in total, outbound bytes per connection and
// per master, peers and observers that stop reading. Whatever cannot be queued is refused to its
// sender or its consumer is closed (its nodes leave): never a silent loss, never unbounded memory.
#include <gtest/gtest.h>

#include <algorithm>

#include "router_test_steps.hpp"
#include "support/captured_log.hpp"
#include "support/router_harness.hpp"

namespace galaxies::test {
namespace {

const std::string chunk(16 * 1024, 'f');

// How a node that left was reported to `end`, if it was.
std::optional<leave_reason> left_as(const fake_end& end, const node_id& n) {
  std::optional<leave_reason> found;
  for (const auto& f : end.frames()) {
    if (f.header.type != wire::frame_type::nodes_down) continue;
    std::vector<wire::node_down_entry> entries;
    if (wire::decode_nodes_down(f, entries)) continue;
    for (const auto& e : entries)
      if (e.node == n) found = e.reason;
  }
  return found;
}

// `from` sends to `to` until `done` (the router runs in between, so it reads what comes).
bool flood(router_harness& h, fake_end& from, const node_id& src, const node_id& to,
           const std::function<bool()>& done, std::size_t max_bytes = 64u << 20) {
  const frame_bytes frame = message(wire::frame_type::send, src, to, 0, 0, "flood", chunk);
  for (std::size_t sent = 0; sent < max_bytes; sent += frame.size()) {
    if (done()) return true;
    if (!from.send(frame)) return done();
    h.run_for(1ms);
  }
  return h.run_until(done, 1s);
}

// `count` messages of 16 KiB from `src` to `dst`, numbered in their command ("m0", "m1", ...),
// queued on `from` to be written as fast as the router reads them.
void send_numbered(fake_end& from, const node_id& src, const node_id& dst, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i)
    from.send_later(
        message(wire::frame_type::send, src, dst, 0, 0, "m" + std::to_string(i), chunk));
}

// Whether `end` received exactly "m0".."m<count-1>", in order.
::testing::AssertionResult all_in_order(const fake_end& end, std::size_t count) {
  const auto got = messages(end);
  if (got.size() != count)
    return ::testing::AssertionFailure() << got.size() << " of " << count << " arrived";
  for (std::size_t i = 0; i < count; ++i)
    if (got[i].command != "m" + std::to_string(i))
      return ::testing::AssertionFailure() << "message " << i << " is " << got[i].command;
  return ::testing::AssertionSuccess();
}

// `slow` reads in bursts, pausing `pause` between them (a receiver slower than its sender), until
// `done` or 20 s. Returns the most the router had queued at any pause.
std::size_t read_slowly(router_harness& h, fake_end& slow, const std::function<bool()>& done,
                        std::chrono::milliseconds pause = 5ms) {
  std::size_t most_queued = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    slow.stop_reading();
    h.run_for(pause);
    most_queued = std::max(most_queued, h.router().queued_bytes());
    slow.resume_reading();
    slow.pump();
  }
  return most_queued;
}

TEST(RouterLimits, ASenderFasterThanItsReceiverIsHeldBackAndNothingIsLost) {
  harness_options o;
  o.limits.max_queue_bytes = 256 * 1024;
  router_harness h(o);
  const node_id a = node_named(0x11, 1);
  const node_id b = node_named(0x12, 1);
  fake_end& a_end = attached_node(h, a);
  fake_end& b_end = attached_node(h, b);
  constexpr std::size_t count = 200;  // 3.2 MiB: twelve times what b's queue may hold
  send_numbered(a_end, a, b, count);
  const std::size_t most_queued =
      read_slowly(h, b_end, [&] { return messages(b_end).size() == count; });
  EXPECT_TRUE(all_in_order(b_end, count));
  EXPECT_GE(h.router().counters().held_back, 1u) << "the sender was never slowed down";
  EXPECT_EQ(h.router().counters().slow_consumers, 0u);
  EXPECT_LE(most_queued, o.limits.max_queue_bytes) << "the router buffered what it should not";
  EXPECT_FALSE(a_end.closed());
  EXPECT_FALSE(b_end.closed());
}

TEST(RouterLimits, ABroadcastWaitsForItsSlowestReceiverAndEveryoneGetsEverything) {
  harness_options o;
  o.limits.max_queue_bytes = 256 * 1024;
  router_harness h(o);
  const node_id a = node_named(0x11, 1);
  const node_id b = node_named(0x12, 1);
  const node_id x = node_named(0x41, 1);
  fake_end& a_end = attached_node(h, a);
  fake_end& b_end = attached_node(h, b);
  fake_end& peer = linked_host(h, host_named(1), {x});
  constexpr std::size_t count = 100;
  for (std::size_t i = 0; i < count; ++i)
    a_end.send_later(
        message(wire::frame_type::broadcast, a, node_id{}, 0, 0, "m" + std::to_string(i), chunk));
  read_slowly(h, peer, [&] {  // the slow one
    return messages(b_end).size() == count && messages(peer).size() == count;
  });
  EXPECT_TRUE(all_in_order(b_end, count));
  EXPECT_TRUE(all_in_order(peer, count));
  EXPECT_EQ(h.router().counters().slow_consumers, 0u);
  EXPECT_FALSE(peer.closed());
}

TEST(RouterLimits, APeerThatStopsReadingHoldsItsSenderOnlyUntilTheStallClosesIt) {
  harness_options o;
  o.limits.max_queue_bytes = 256 * 1024;
  o.limits.write_stall = std::chrono::milliseconds(300);
  router_harness h(o);
  const node_id a = node_named(0x11, 1);
  const node_id x = node_named(0x41, 1);
  const node_id y = node_named(0x42, 1);
  fake_end& a_end = attached_node(h, a);
  fake_end& slow = linked_host(h, host_named(1), {x});
  fake_end& fine = linked_host(h, host_named(2), {y});
  slow.stop_reading();
  send_numbered(a_end, a, x, 64);  // 1 MiB, four times x's queue bound
  ASSERT_TRUE(h.run_until([&] { return left_as(a_end, x).has_value(); }, 5s))
      << "the stalled peer was never closed";
  EXPECT_EQ(left_as(a_end, x), leave_reason::overloaded);
  EXPECT_GE(h.router().counters().held_back, 1u);
  EXPECT_EQ(h.router().counters().slow_consumers, 1u);
  EXPECT_FALSE(a_end.closed()) << "the sender is not to blame";
  EXPECT_FALSE(fine.closed());
  // Released with x's departure: the rest of its sends are read (and refused: x is gone), its
  // traffic to others flows again, and x's queue is freed.
  a_end.send_later(message(wire::frame_type::send, a, y, 0, 0, "after"));
  ASSERT_TRUE(h.run_until([&] { return !messages(fine).empty(); }))
      << "the sender stayed held back";
  EXPECT_EQ(messages(fine).back().command, "after");
  EXPECT_TRUE(h.run_until([&] { return h.router().queued_bytes() < 64 * 1024; }))
      << "its queue was not released: " << h.router().queued_bytes();
}

TEST(RouterLimits, ANodeThatHoldsAHostLinkBackTooLongGoesAndTheLinkFlowsAgain) {
  harness_options o;
  o.limits.max_queue_bytes = 256 * 1024;
  o.limits.max_hold = std::chrono::milliseconds(300);
  router_harness h(o);
  const node_id b = node_named(0x12, 1);
  const node_id c = node_named(0x13, 1);
  const node_id x = node_named(0x41, 1);
  fake_end& b_end = attached_node(h, b);
  fake_end& c_end = attached_node(h, c);
  fake_end& peer = linked_host(h, host_named(1), {x});
  b_end.stop_reading();  // alive, heartbeating or not, but taking nothing
  send_numbered(peer, x, b, 64);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(h.run_until([&] { return h.router().counters().held_back > 0; }))
      << "the host link was never held back";
  peer.send_later(message(wire::frame_type::send, x, c, 0, 0, "after"));
  ASSERT_TRUE(h.run_until([&] { return left_as(peer, b).has_value(); }, 5s))
      << "the node holding the link was never closed";
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms) << "closed before max_hold";
  EXPECT_EQ(left_as(peer, b), leave_reason::overloaded);
  EXPECT_EQ(h.router().counters().slow_consumers, 1u);
  // The link was released, not blamed: what came behind the flood arrives.
  ASSERT_TRUE(h.run_until([&] { return !messages(c_end).empty(); })) << "the link stayed held";
  EXPECT_EQ(messages(c_end).back().command, "after");
  EXPECT_FALSE(peer.closed());
  EXPECT_FALSE(c_end.closed());
}

TEST(RouterLimits, ASlowNodeThatKeepsDrainingHoldsAHostLinkWithoutBeingClosed) {
  harness_options o;
  o.limits.max_queue_bytes = 256 * 1024;
  o.limits.max_hold = std::chrono::milliseconds(300);
  router_harness h(o);
  const node_id b = node_named(0x12, 1);
  const node_id x = node_named(0x41, 1);
  fake_end& b_end = attached_node(h, b);
  fake_end& peer = linked_host(h, host_named(1), {x});
  constexpr std::size_t count = 200;
  send_numbered(peer, x, b, count);
  // Slow, but draining well within max_hold.
  read_slowly(
      h, b_end, [&] { return messages(b_end).size() == count; }, 20ms);
  EXPECT_TRUE(all_in_order(b_end, count));
  EXPECT_GE(h.router().counters().held_back, 1u);
  EXPECT_EQ(h.router().counters().slow_consumers, 0u);
  EXPECT_FALSE(b_end.closed());
  EXPECT_FALSE(peer.closed());
}

TEST(RouterLimits, APeerThatReadsNothingForTooLongIsClosedEvenWithinItsQueueBound) {
  harness_options o;
  o.limits.write_stall = std::chrono::milliseconds(200);
  router_harness h(o);
  const node_id a = node_named(0x11, 1);
  const node_id x = node_named(0x41, 1);
  fake_end& a_end = attached_node(h, a);
  fake_end& stalled = linked_host(h, host_named(1), {x});
  stalled.stop_reading();
  const auto start = std::chrono::steady_clock::now();
  // Enough to fill the socket's buffers and leave a write pending, far below max_queue_bytes.
  std::size_t sent = 0;
  ASSERT_TRUE(flood(h, a_end, a, x, [&] {
    return left_as(a_end, x).has_value() || (sent += chunk.size()) > (2u << 20);
  }));
  ASSERT_TRUE(h.run_until([&] { return left_as(a_end, x).has_value(); }, 3s));
  // Never before the stall limit: a slow write is not yet a stalled one.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
  EXPECT_EQ(left_as(a_end, x), leave_reason::overloaded);
  EXPECT_TRUE(h.run_until([&] { return stalled.closed() || h.router().connection_count() == 1; }));
}

TEST(RouterLimits, AStoppedNodeWithinItsFlowBudgetIsNotClosedForTheStall) {
  // Its senders' credit (protocol.md §4.1) bounds what waits for it: keeping it costs no more than
  // that, and it may be stopped on purpose. Its heartbeats, not the stall, say whether it lives.
  harness_options o;
  o.limits.max_queue_bytes = 16u << 20;  // a flow budget of 8 MiB
  o.limits.write_stall = std::chrono::milliseconds(100);
  router_harness h(o);
  const node_id a = node_named(0x11, 1);
  const node_id b = node_named(0x12, 1);
  fake_end& a_end = attached_node(h, a);
  fake_end& b_end = attached_node(h, b);
  b_end.stop_reading();
  constexpr std::size_t count = 128;  // 2 MiB: past the socket's buffers, within the budget
  send_numbered(a_end, a, b, count);
  ASSERT_TRUE(h.run_until([&] { return a_end.unsent() == 0; }, 5s));
  h.run_for(500ms);  // five stall limits; there is no event to wait for when nothing happens
  EXPECT_FALSE(b_end.closed());
  EXPECT_EQ(h.router().counters().slow_consumers, 0u);
  b_end.resume_reading();
  EXPECT_TRUE(h.run_until([&] { return messages(b_end).size() == count; }, 5s));
  EXPECT_TRUE(all_in_order(b_end, count));
}

TEST(RouterLimits, WhenTheMastersBudgetIsSpentTheLargestQueueGoes) {
  harness_options o;
  o.limits.max_queue_bytes = 8u << 20;
  o.limits.max_total_queue_bytes = 1u << 20;
  router_harness h(o);
  const node_id a = node_named(0x11, 1);
  const node_id x = node_named(0x41, 1);
  const node_id y = node_named(0x42, 1);
  fake_end& a_end = attached_node(h, a);
  fake_end& big = linked_host(h, host_named(1), {x});
  fake_end& small = linked_host(h, host_named(2), {y});
  big.stop_reading();
  small.stop_reading();
  // x's queue grows to most of the budget...
  ASSERT_TRUE(flood(h, a_end, a, x, [&] { return h.router().queued_bytes() > (700u << 10); }));
  ASSERT_FALSE(left_as(a_end, x).has_value());
  // ...then y's growth spends the rest: the largest holder (x's host) goes, y's stays.
  ASSERT_TRUE(flood(
      h, a_end, a, y, [&] { return left_as(a_end, x).has_value(); }, 4u << 20));
  EXPECT_EQ(left_as(a_end, x), leave_reason::overloaded);
  EXPECT_FALSE(left_as(a_end, y).has_value());
  EXPECT_LE(h.router().queued_bytes(), o.limits.max_total_queue_bytes);
}

TEST(RouterLimits, AnObserverThatNeverReadsItsAnswersIsClosed) {
  harness_options o;
  o.limits.max_queue_bytes = 64 * 1024;
  router_harness h(o);
  attached_node(h, node_named(0x11, 1));
  fake_end& observer = h.connect_local();
  observer.send(node_hello(node_id::random(), h.options().cluster, wire::role::observer));
  ASSERT_TRUE(h.run_until([&] { return welcome_of(observer).has_value(); }));
  observer.stop_reading();
  frame_bytes ask;
  wire::append_status_request(ask);
  std::size_t asked = 0;
  ASSERT_TRUE(h.run_until(
      [&] {
        if (h.router().connection_count() == 1) return true;
        if (asked < 20000 && observer.send(ask)) ++asked;
        return false;
      },
      10s))
      << "still open after " << asked << " requests";
  EXPECT_EQ(h.router().counters().slow_consumers, 1u);
  EXPECT_LT(h.router().queued_bytes(), 64u * 1024);
}

TEST(RouterLimits, ConnectionsInHandshakeAreBounded) {
  harness_options o;
  o.limits.max_handshakes = 2;
  router_harness h(o);
  fake_end& first = h.connect_host();
  h.connect_host();
  fake_end& third = h.connect_host();
  ASSERT_TRUE(h.run_until([&] { return third.closed(); }));
  const auto r = refusal(third);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, wire::refuse_code::overloaded);
  EXPECT_TRUE(r->text.empty());
  // Once one of them is through its handshake, there is room again.
  dial_in(h, first, host_named(1), std::nullopt);
  ASSERT_TRUE(welcome_of(first));
  fake_end& fourth = h.connect_host();
  dial_in(h, fourth, host_named(2), std::nullopt);
  EXPECT_TRUE(welcome_of(fourth));
}

TEST(RouterLimits, ConnectionsInTotalAreBounded) {
  harness_options o;
  o.limits.max_connections = 3;
  router_harness h(o);
  attached_node(h, node_named(0x11, 1));
  attached_node(h, node_named(0x11, 2));
  linked_host(h, host_named(1), {});
  fake_end& local = h.connect_local();
  fake_end& host = h.connect_host();
  ASSERT_TRUE(h.run_until([&] { return local.closed() && host.closed(); }));
  EXPECT_EQ(refusal(local)->code, wire::refuse_code::overloaded);
  EXPECT_EQ(refusal(host)->code, wire::refuse_code::overloaded);
  EXPECT_EQ(h.router().connection_count(), 3u);
}

TEST(RouterLimits, AHandshakeNeverCompletedIsClosedAtTheDeadline) {
  // handshake_timeout is 5 s: this only checks the connection is not kept for ever, and that the
  // count of handshakes comes back down.
  harness_options o;
  o.limits.max_handshakes = 1;
  router_harness h(o);
  fake_end& idle = h.connect_host();
  ASSERT_TRUE(h.run_until([&] { return idle.closed() && h.router().connection_count() == 0; }, 7s));
  fake_end& next = h.connect_host();
  dial_in(h, next, host_named(1), std::nullopt);
  EXPECT_TRUE(welcome_of(next));
}

}  // namespace
}  // namespace galaxies::test

namespace galaxies::test {
namespace {

TEST(RouterLimits, StrangersCannotFloodTheLog) {
  captured_log warnings;  // warning level and above
  router_harness h;
  constexpr int strangers = 500;
  for (int i = 0; i < strangers; ++i) {
    fake_end& turned_away = h.connect_host({"10.9.8.7:" + std::to_string(1000 + i), false});
    fake_end& garbage = h.connect_host();
    garbage.send(message(wire::frame_type::send, node_named(1, 1), node_named(1, 2)));
    h.run_until([&] { return turned_away.closed() && garbage.closed(); });
    turned_away.close();
    garbage.close();
  }
  EXPECT_EQ(h.router().counters().refused_connections, static_cast<std::uint64_t>(strangers));
  // A burst, then about one line a second: far fewer lines than strangers.
  EXPECT_LT(warnings.lines(), 100u) << "each stranger's failure was logged:\n"
                                    << warnings.text().substr(0, 2000);
  EXPECT_GT(warnings.lines(), 0u) << "nothing logged at all";
}

}  // namespace
}  // namespace galaxies::test
