// One link per host pair, and no way to displace a live one: every branch of the duplicate-link
// rule (protocol.md §6), played with fake hosts over socketpairs.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "router_test_steps.hpp"
#include "support/router_harness.hpp"

namespace galaxies::test {
namespace {

// Heartbeats fast enough for a unit test: 20 ms, declared gone after 100 ms of silence.
harness_options beating() {
  harness_options o;
  o.heartbeat = {std::chrono::milliseconds(20), 5};
  return o;
}

// A fake host that keeps its link alive, as a real master does.
frame_bytes heartbeat() {
  frame_bytes out;
  wire::append_heartbeat(out);
  return out;
}

// Runs until `done`, while `alive` keeps sending heartbeats every 10 ms.
bool run_beating(router_harness& h, fake_end& alive, const std::function<bool()>& done,
                 std::chrono::milliseconds limit = 3s) {
  auto next = std::chrono::steady_clock::now();
  return h.run_until(
      [&] {
        if (std::chrono::steady_clock::now() >= next && !alive.closed()) {
          alive.send(heartbeat());
          next += 10ms;
        }
        return done();
      },
      limit);
}

// A hello with heartbeats advertised, so the router runs them on the link.
frame_bytes beating_hello(const router_harness& h, const host_id& p, std::uint32_t pid = 0) {
  wire::hello hello;
  hello.pid = pid;
  hello.role = wire::role::host;
  hello.sender = p.value();
  hello.target = h.options().self.value();
  hello.cluster = h.options().cluster;
  hello.listen = "127.0.0.1:7001";
  hello.heartbeat_ms = 20;
  hello.flow_window = limits::default_flow_window;
  frame_bytes out;
  wire::append_hello(out, hello);
  return out;
}

fake_end& beating_host(router_harness& h, const host_id& p, const node_id& n) {
  fake_end& end = h.connect_host();
  end.send(beating_hello(h, p));
  EXPECT_TRUE(run_beating(h, end, [&] { return welcome_of(end).has_value(); }));
  end.send(nodes_up({{n, p, 1}}));
  EXPECT_TRUE(run_beating(h, end, [&] { return linked_nodes(h.router(), p) == 1; }));
  return end;
}

// ---- a master on this machine that waits for a core (protocol.md §8.1) ----

using probe = std::function<std::optional<std::chrono::nanoseconds>()>;

// Every process waits for nothing but `starved`, which has been queued for a core since `since`,
// as the kernel's figures would say of a master behind hundreds of runnable tasks.
harness_options starving(pid_t starved, std::chrono::steady_clock::time_point since,
                         std::vector<pid_t>& asked) {
  harness_options o = beating();
  o.cpu_wait = [starved, since, &asked](pid_t pid) -> probe {
    asked.push_back(pid);
    return [starved, since, pid]() -> std::optional<std::chrono::nanoseconds> {
      if (pid != starved) return std::chrono::nanoseconds{0};
      return std::chrono::steady_clock::now() - since;
    };
  };
  return o;
}

fake_end& silent_loopback_host(router_harness& h, const host_id& p, pid_t pid) {
  fake_end& end = h.connect_host();
  end.send(beating_hello(h, p, static_cast<std::uint32_t>(pid)));
  EXPECT_TRUE(run_beating(h, end, [&] { return welcome_of(end).has_value(); }));
  end.send(nodes_up({{node_named(0x41, 1), p, 1}}));
  EXPECT_TRUE(run_beating(h, end, [&] { return linked_nodes(h.router(), p) == 1; }));
  return end;  // and from here on, it says nothing
}

TEST(RouterLinks, ALoopbackHostWhoseMasterWaitsForACoreIsForgivenItsSilenceWithinTheBound) {
  constexpr pid_t starved = 4242;
  std::vector<pid_t> asked;
  router_harness h(starving(starved, std::chrono::steady_clock::now(), asked));
  const host_id p = host_named(1);
  fake_end& end = silent_loopback_host(h, p, starved);
  EXPECT_NE(std::find(asked.begin(), asked.end(), starved), asked.end())
      << "the pid of its hello is asked";
  h.run_for(300ms);  // three times the 100 ms limit
  EXPECT_FALSE(end.closed()) << "declared gone while its master waited for a core";
  EXPECT_EQ(linked_nodes(h.router(), p), 1);
  // Never forever: 40 detection times at most (max_stretch 8 x local_health_cpu_wait_factor).
  EXPECT_TRUE(h.run_until([&] { return end.closed() && linked_nodes(h.router(), p) == -1; }, 8s));
}

TEST(RouterLinks, ALoopbackHostWhoseMasterWaitsForNothingIsDeclaredGoneAtItsLimit) {
  std::vector<pid_t> asked;
  router_harness h(starving(4242, std::chrono::steady_clock::now(), asked));
  const host_id p = host_named(1);
  fake_end& end = silent_loopback_host(h, p, 4343);
  EXPECT_NE(std::find(asked.begin(), asked.end(), 4343), asked.end());
  EXPECT_TRUE(h.run_until([&] { return end.closed() && linked_nodes(h.router(), p) == -1; }, 3s));
}

// An attached node that asks for heartbeats, is registered, and from then on says nothing. Its
// process is known by the pid the kernel recorded at connect(): this test's, which made the pair.
fake_end& silent_attached_node(router_harness& h) {
  fake_end& end = h.connect_local();
  wire::hello hello;
  hello.role = wire::role::attached;
  hello.sender = node_named(0x11, 1).value();
  hello.pid = 4343;  // what it claims; the kernel's word is taken
  hello.cluster = h.options().cluster;
  hello.max_frame = limits::default_max_frame_size;
  hello.flow_window = limits::default_flow_window;
  hello.heartbeat_ms = 20;
  frame_bytes out;
  wire::append_hello(out, hello);
  end.send(out);
  EXPECT_TRUE(h.run_until([&] {
    const auto f = end.last(wire::frame_type::nodes_up);
    return f && (f->header.flags & wire::flag_snapshot);
  }));
  return end;
}

TEST(RouterLinks, AnAttachedNodeWhoseProcessWaitsForACoreIsForgivenItsSilenceWithinTheBound) {
  std::vector<pid_t> asked;
  router_harness h(starving(::getpid(), std::chrono::steady_clock::now(), asked));
  fake_end& end = silent_attached_node(h);
  EXPECT_NE(std::find(asked.begin(), asked.end(), ::getpid()), asked.end())
      << "the pid of its socket's peer is asked";
  EXPECT_EQ(std::find(asked.begin(), asked.end(), 4343), asked.end()) << "not the pid it claims";
  h.run_for(300ms);  // three times the 100 ms limit
  EXPECT_FALSE(end.closed()) << "closed while its process waited for a core";
  EXPECT_TRUE(h.run_until([&] { return end.closed(); }, 8s)) << "never forever";
}

TEST(RouterLinks, AnAttachedNodeWhoseProcessWaitsForNothingIsClosedAtItsLimit) {
  std::vector<pid_t> asked;
  router_harness h(starving(4242, std::chrono::steady_clock::now(), asked));
  fake_end& end = silent_attached_node(h);
  EXPECT_TRUE(h.run_until([&] { return end.closed(); }, 3s));
}

TEST(RouterLinks, AHelloClaimingALiveHostIsHeldThenRefusedAndTheLinkStays) {
  router_harness h(beating());
  const host_id p = host_named(1);
  const node_id x = node_named(0x41, 1);
  fake_end& local = attached_node(h, node_named(0x11, 1));
  fake_end& live = beating_host(h, p, x);
  ASSERT_TRUE(run_beating(h, live, [&] { return nodes_seen(local) == std::vector<node_id>{x}; }));

  fake_end& claim = h.connect_host();
  claim.send(beating_hello(h, p));
  ASSERT_TRUE(run_beating(h, live, [&] { return claim.closed(); }));
  const auto r = refusal(claim);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, wire::refuse_code::duplicate_link);
  EXPECT_FALSE(live.closed());
  EXPECT_EQ(linked_nodes(h.router(), p), 1);
  EXPECT_EQ(local.count(wire::frame_type::nodes_down), 0u) << "the live host's node flapped";
}

TEST(RouterLinks, ASecondClaimWhileOneIsHeldIsRefusedAtOnce) {
  router_harness h(beating());
  const host_id p = host_named(1);
  fake_end& live = beating_host(h, p, node_named(0x41, 1));
  fake_end& first_claim = h.connect_host();
  first_claim.send(beating_hello(h, p));
  run_beating(
      h, live, [] { return false; }, 20ms);
  ASSERT_FALSE(first_claim.closed());
  fake_end& second_claim = h.connect_host();
  second_claim.send(beating_hello(h, p));
  ASSERT_TRUE(run_beating(
      h, live, [&] { return second_claim.closed(); }, 60ms))
      << "refused before the first hold ran out";
  EXPECT_EQ(refusal(second_claim)->code, wire::refuse_code::duplicate_link);
}

TEST(RouterLinks, AHostWhoseOldLinkIsClosedIsLinkedAgainAtOnce) {
  router_harness h(beating());
  const host_id p = host_named(1);
  const node_id x = node_named(0x41, 1);
  fake_end& local = attached_node(h, node_named(0x11, 1));
  fake_end& old = beating_host(h, p, x);
  old.close();  // it declared the link dead and closed it
  fake_end& again = h.connect_host();
  again.send(beating_hello(h, p));
  ASSERT_TRUE(run_beating(
      h, again, [&] { return welcome_of(again).has_value(); }, 1s));
  again.send(nodes_up({{x, p, 1}}));
  ASSERT_TRUE(run_beating(h, again, [&] {
    return local.count(wire::frame_type::nodes_down) == 1 &&
           nodes_seen(local) == std::vector<node_id>{x};
  })) << "x must leave and join again: never a silent swap";
}

TEST(RouterLinks, AHostWhoseOldLinkWentSilentIsLinkedAgainOnceItFails) {
  router_harness h(beating());
  const host_id p = host_named(1);
  fake_end& old = beating_host(h, p, node_named(0x41, 1));
  old.stop_reading();  // a half-open link: no more heartbeats from it, no reset either
  fake_end& again = h.connect_host();
  again.send(beating_hello(h, p));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_beating(
      h, again, [&] { return welcome_of(again).has_value(); }, 2s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 90ms) << "accepted before the old one failed";
  EXPECT_EQ(linked_nodes(h.router(), p), 0) << "the new link's nodes are yet to come";
}

// Our own dial of a larger host won a simultaneous-dial race: its hello is the loser.
TEST(RouterLinks, AnEstablishedLinkWeDialledToALargerHostRefusesItsHello) {
  router_harness h;
  const host_id p = high_host(1);
  h.router().set_peers({{p, "127.0.0.1:7100"}});
  fake_end* ours = h.answer_dial();
  ASSERT_TRUE(ours);
  wire::welcome w;
  w.host = p;
  w.cluster = h.options().cluster;
  w.flow_window = limits::default_flow_window;
  frame_bytes out;
  wire::append_welcome(out, w);
  ours->send(out);
  ASSERT_TRUE(h.run_until([&] { return linked_nodes(h.router(), p) == 0; }));

  fake_end& theirs = h.connect_host();
  theirs.send(host_hello(p, h.options().self, h.options().cluster));
  ASSERT_TRUE(h.run_until([&] { return theirs.closed(); }, 200ms)) << "refused at once";
  EXPECT_EQ(refusal(theirs)->code, wire::refuse_code::duplicate_link);
  EXPECT_FALSE(ours->closed());
}

TEST(RouterLinks, WhileDiallingALargerHostItsHelloLoses) {
  router_harness h;
  const host_id p = high_host(1);
  h.router().set_peers({{p, "127.0.0.1:7100"}});
  ASSERT_EQ(h.pending_dials(), 1u);
  fake_end& theirs = h.connect_host();
  theirs.send(host_hello(p, h.options().self, h.options().cluster));
  ASSERT_TRUE(h.run_until([&] { return theirs.closed(); }));
  EXPECT_EQ(refusal(theirs)->code, wire::refuse_code::duplicate_link);
}

TEST(RouterLinks, WhileDiallingASmallerHostOurDialYieldsToItsHello) {
  router_harness h;
  const host_id p = host_named(1);
  h.router().set_peers({{p, "127.0.0.1:7100"}});
  fake_end* ours = h.answer_dial();
  ASSERT_TRUE(ours);
  ASSERT_TRUE(h.run_until([&] { return ours->count(wire::frame_type::hello) == 1; }));
  fake_end& theirs = h.connect_host();
  theirs.send(host_hello(p, h.options().self, h.options().cluster));
  ASSERT_TRUE(h.run_until([&] { return welcome_of(theirs).has_value() && ours->closed(); }));
  EXPECT_EQ(linked_nodes(h.router(), p), 0);
  EXPECT_EQ(h.router().status()["peers"][0]["dialled_by_us"], false);
}

TEST(RouterLinks, DialsRunAFewAtATime) {
  harness_options o;
  o.limits.max_dials = 2;
  router_harness h(o);
  std::vector<router::peer_row> rows;
  for (std::uint8_t i = 1; i <= 5; ++i)
    rows.push_back({host_named(i), "127.0.0.1:71" + std::to_string(i)});
  h.router().set_peers(rows);
  EXPECT_EQ(h.pending_dials(), 2u);
  // One dial ends (the host is not there): the next starts.
  fake_end* first = h.answer_dial();
  ASSERT_TRUE(first);
  first->close();
  ASSERT_TRUE(h.run_until([&] { return h.pending_dials() == 2; }));
}

}  // namespace
}  // namespace galaxies::test
