// Fault tests on real test hosts (network namespaces on one bridge; see tests/support/netns.hpp):
// three chatter hosts talk all the time while a worker or a master is killed, a master is
// frozen, or a host goes silent. Each test asserts what users rely on (README "Guarantees"):
// who sees whom leave, why, exactly once, and when; then the traffic is drained and the whole
// history goes through the event-log checker. Latencies are reported, not judged, except for the
// heartbeat detector's documented window.
//
// Run as root: `ctest -L slow -R fault_test` (each test re-executes itself in a fresh network
// namespace; without root every test skips). A failed test keeps its directory (/tmp/gxf...:
// each master's log, each node's event file); GALAXIES_TEST_KEEP_DIRS=1 keeps it always, and
// `event_log_check DIR/logs --drained --same-views` re-runs the checker over it.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>

#include "fault_fixture.hpp"

namespace galaxies::test::fault {
namespace {

// Bounds of the waits; the real durations are far shorter (and reported).
constexpr auto leave_deadline = 10s;
constexpr auto rejoin_deadline = 30s;

class fault_test : public fault_fixture {
 protected:
  void report(const std::string& key, const std::vector<double>& ms) {
    fault_fixture::report(key, ms);
    if (!ms.empty())
      RecordProperty(key + "_max_us",
                     static_cast<int>(*std::max_element(ms.begin(), ms.end()) * 1000));
  }
  // Detection of a silent host: each observer's hostLeft(subject) after the fault must fall in
  // [0.8 x, 1.5 x + 200 ms] of the configured detection time. `before`/`after` bracket the
  // moment of the fault; the bounds are checked against the least favourable end.
  void expect_detection_window(fault_cluster& c, const std::vector<node_ref>& observers,
                               const std::vector<std::string>& subjects, double before,
                               double after, const std::string& key) {
    const double d = static_cast<double>(c.detection().count());
    std::vector<double> measured;
    for (const auto& o : observers)
      for (const auto& s : subjects) {
        const auto t = c.first(o.id, kind::host_left, s, before);
        if (!t) {
          ADD_FAILURE() << c.logs().name(c.logs().lookup(o.id)) << " never saw hostLeft(" << s
                        << ")";
          continue;
        }
        measured.push_back(*t - before);
        EXPECT_GE(*t - after, 0.8 * d)
            << o.id << " saw hostLeft(" << s << ") too early: before any detector could fire";
        EXPECT_LE(*t - before, 1.5 * d + 200)
            << o.id << " saw hostLeft(" << s << ") too late for a detection time of " << d << " ms";
      }
    report(key + " (detection " + std::to_string(c.detection().count()) + " ms)", measured);
  }
};

// Waits until every observer saw `what` about every subject at or after `after`.
bool all_saw(fault_cluster& c, const std::vector<node_ref>& observers, kind what,
             const std::vector<std::string>& subjects, double after = 0) {
  return c.wait_logs(leave_deadline, [&] {
    for (const auto& o : observers)
      for (const auto& s : subjects)
        if (!c.first(o.id, what, s, after)) return false;
    return true;
  });
}

std::vector<node_ref> except(std::vector<node_ref> nodes, const std::vector<node_ref>& gone) {
  std::erase_if(nodes, [&](const node_ref& n) {
    return std::any_of(gone.begin(), gone.end(), [&](const node_ref& g) { return g.id == n.id; });
  });
  return nodes;
}

std::vector<std::string> ids(const std::vector<node_ref>& nodes) {
  std::vector<std::string> out;
  for (const auto& n : nodes) out.push_back(n.id);
  return out;
}

// A host started while the cluster is busy: everyone sees it and its nodes join exactly once, and
// nobody sees anything leave (a spurious leave would fail a user's requests to a healthy node).
TEST_F(fault_test, a_host_joining_a_busy_cluster_joins_once_and_nothing_leaves) {
  cluster_options o;
  o.start_now = {"a", "b"};
  fault_cluster c(o);
  form(c);
  if (HasFatalFailure()) return;
  const auto before = c.live_nodes();

  const double t0 = netns::monotonic_ms();
  c.start_host("c");
  ASSERT_EQ(c.wait_formed(formation_deadline), "") << c.master_logs();
  const auto newcomers = c.live_nodes("c");
  const auto everyone = c.live_nodes();
  const std::string new_host = c.host_id("c");

  // From the start of c on (the formation of a and b is not this test's business).
  std::vector<double> latencies;
  for (const auto& obs : before) {
    const auto joined = c.all(obs.id, kind::host_joined, new_host, t0);
    EXPECT_EQ(joined.size(), 1u) << obs.id << " saw hostJoined(c) " << joined.size() << " times";
    if (!joined.empty()) latencies.push_back(joined[0].t_ms - t0);
    EXPECT_TRUE(c.all(obs.id, kind::host_left, new_host, t0).empty()) << obs.id << " saw c leave";
  }
  for (const auto& obs : newcomers)
    for (const auto& h : {c.host_id("a"), c.host_id("b")}) {
      EXPECT_EQ(c.all(obs.id, kind::host_joined, h).size(), 1u) << obs.id << " about host " << h;
      EXPECT_TRUE(c.all(obs.id, kind::host_left, h).empty()) << obs.id << " saw " << h << " leave";
    }
  const auto is_new = [&](const node_ref& n) { return n.host_label == "c"; };
  for (const auto& obs : everyone)
    for (const auto& x : everyone) {
      if (x.id == obs.id) continue;
      const std::size_t joins = is_new(obs) || is_new(x) ? 1 : 0;
      EXPECT_EQ(c.all(obs.id, kind::node_joined, x.id, t0).size(), joins)
          << obs.id << "@" << obs.host_label << " about " << x.id << "@" << x.host_label;
      EXPECT_TRUE(c.all(obs.id, kind::node_left, x.id, t0).empty())
          << obs.id << "@" << obs.host_label << " saw " << x.id << "@" << x.host_label << " leave";
    }
  report("host start -> hostJoined at the others", latencies);
  expect_clean_history(c);
  if (HasFailure()) std::printf("%s", c.master_logs().c_str());
}

// A worker killed with SIGKILL: its master sees the process exit, so every node hears of it at
// once (nodeLeft, reason exited, the wait status as detail), exactly once, long before any
// heartbeat could have noticed; the slot's replacement joins everywhere.
TEST_F(fault_test, a_killed_worker_leaves_everywhere_at_once_and_exactly_once) {
  cluster_options o;
  o.heartbeat = 250ms;  // 1.5 s detection: a leave well before it cannot come from heartbeats
  o.heartbeat_misses = 6;
  fault_cluster c(o);
  form(c);
  if (HasFatalFailure()) return;
  const auto victim = c.live_nodes("a").front();
  const auto before = c.live_nodes();
  const auto observers = except(before, {victim});

  const double t0 = netns::monotonic_ms();
  ASSERT_EQ(::kill(victim.pid, SIGKILL), 0);
  ASSERT_TRUE(all_saw(c, observers, kind::node_left, {victim.id}))
      << "not every node saw the killed worker leave\n"
      << c.master_logs();

  std::vector<double> same_host, across;
  for (const auto& obs : observers) {
    const auto leaves = c.all(obs.id, kind::node_left, victim.id, t0);
    ASSERT_EQ(leaves.size(), 1u) << obs.id;
    EXPECT_EQ(leaves[0].text, "exited") << obs.id;
    EXPECT_EQ(leaves[0].detail, SIGKILL) << obs.id << ": the wait status of a SIGKILL";
    const double latency = leaves[0].t_ms - t0;
    (obs.host_label == victim.host_label ? same_host : across).push_back(latency);
    EXPECT_LT(latency, 0.5 * static_cast<double>(c.detection().count()))
        << obs.id << " heard of the exit only after " << latency << " ms";
  }
  report("worker kill -> nodeLeft, same host", same_host);
  report("worker kill -> nodeLeft, across hosts", across);

  // The supervisor replaces the worker with a new node, which joins everywhere.
  ASSERT_EQ(c.wait_formed(formation_deadline), "") << c.master_logs();
  const auto fresh = except(c.live_nodes("a"), before);
  ASSERT_EQ(fresh.size(), 1u);
  for (const auto& obs : observers) {
    EXPECT_EQ(c.all(obs.id, kind::node_joined, fresh[0].id).size(), 1u) << obs.id;
  }
  EXPECT_TRUE(c.all(fresh[0].id, kind::node_joined, victim.id).empty())
      << "the new node never knew the old one";
  expect_clean_history(c);
}

// A master killed with SIGKILL: every other node sees all its nodes leave (reason host_left)
// and its host leave, exactly once; its workers, orphaned, exit by themselves.
TEST_F(fault_test, a_killed_master_takes_all_its_nodes_and_workers_with_it) {
  fault_cluster c;
  form(c);
  if (HasFatalFailure()) return;
  const auto gone = c.live_nodes("a");
  const auto gone_host = c.host_id("a");
  const auto observers = except(c.live_nodes(), gone);

  const double t0 = netns::monotonic_ms();
  c.master("a").signal(SIGKILL);
  ASSERT_TRUE(all_saw(c, observers, kind::node_left, ids(gone)))
      << "not every node saw the master's nodes leave\n"
      << c.master_logs();
  ASSERT_TRUE(all_saw(c, observers, kind::host_left, {gone_host}));

  std::vector<double> latencies;
  for (const auto& obs : observers) {
    for (const auto& g : gone) {
      const auto leaves = c.all(obs.id, kind::node_left, g.id, t0);
      ASSERT_EQ(leaves.size(), 1u) << obs.id << " about " << g.id;
      EXPECT_EQ(leaves[0].text, "host_left") << obs.id << " about " << g.id;
      latencies.push_back(leaves[0].t_ms - t0);
    }
    const auto host_leaves = c.all(obs.id, kind::host_left, gone_host, t0);
    ASSERT_EQ(host_leaves.size(), 1u) << obs.id;
    EXPECT_EQ(host_leaves[0].text, "host_left") << obs.id;
  }
  report("master kill -> nodeLeft of its nodes", latencies);

  // Orphaned workers notice their master is gone (EOF on their channel) and exit.
  EXPECT_TRUE(c.wait_logs(10s, [&] {
    return std::all_of(gone.begin(), gone.end(),
                       [](const node_ref& n) { return process_gone(n.pid); });
  })) << "a worker of the killed master still runs";
  EXPECT_TRUE(c.master("a").wait_exit(1s));
  expect_clean_history(c);
}

// A frozen master (SIGSTOP): the other hosts detect the silence within the heartbeat window and
// see its nodes leave (link_lost); once it runs again it rejoins: its nodes leave and join again
// everywhere, never silently swapped, and the whole history passes the checker.
TEST_F(fault_test, a_frozen_master_is_detected_in_the_window_and_rejoins_after) {
  fault_cluster c;
  form(c);
  if (HasFatalFailure()) return;
  const auto frozen = c.live_nodes("a");
  const auto frozen_host = c.host_id("a");
  const auto observers = except(c.live_nodes(), frozen);

  const double before = netns::monotonic_ms();
  c.master("a").signal(SIGSTOP);
  const double after = netns::monotonic_ms();
  const bool detected = all_saw(c, observers, kind::host_left, {frozen_host}, before);
  c.master("a").signal(SIGCONT);
  const double resumed = netns::monotonic_ms();
  ASSERT_TRUE(detected) << "the frozen host was never seen leaving\n" << c.master_logs();
  expect_detection_window(c, observers, {frozen_host}, before, after, "SIGSTOP -> hostLeft");
  ASSERT_TRUE(all_saw(c, observers, kind::node_left, ids(frozen), before));
  for (const auto& obs : observers)
    for (const auto& f : frozen) {
      const auto leaves = c.all(obs.id, kind::node_left, f.id, before);
      ASSERT_EQ(leaves.size(), 1u) << obs.id << " about " << f.id;
      EXPECT_EQ(leaves[0].text, "link_lost") << obs.id << " about " << f.id;
    }

  ASSERT_EQ(c.wait_formed(rejoin_deadline), "") << "the host did not rejoin\n" << c.master_logs();
  std::vector<double> rejoin;
  for (const auto& obs : observers) {
    const auto joined = c.first(obs.id, kind::host_joined, frozen_host, resumed);
    ASSERT_TRUE(joined) << obs.id << " never saw the host join again";
    rejoin.push_back(*joined - resumed);
  }
  report("SIGCONT -> hostJoined again", rejoin);
  expect_clean_history(c);
}

// A host whose link goes down is silent both ways: the others detect it, and it detects them,
// within the heartbeat window; once the link is up again it rejoins everywhere.
TEST_F(fault_test, a_silent_host_is_detected_on_both_sides_in_the_window_and_rejoins) {
  fault_cluster c;
  form(c);
  if (HasFatalFailure()) return;
  const auto cut = c.live_nodes("a");
  const auto observers = except(c.live_nodes(), cut);
  const std::vector<std::string> other_hosts{c.host_id("b"), c.host_id("c")};
  const std::string cut_host = c.host_id("a");

  const double before = netns::monotonic_ms();
  c.net().link_down("a");
  const double after = netns::monotonic_ms();
  const bool outside = all_saw(c, observers, kind::host_left, {cut_host}, before);
  const bool inside = all_saw(c, cut, kind::host_left, other_hosts, before);
  c.net().link_up("a");
  const double healed = netns::monotonic_ms();
  ASSERT_TRUE(outside && inside) << "the silence was not detected on both sides\n"
                                 << c.master_logs();
  expect_detection_window(c, observers, {cut_host}, before, after, "link down -> hostLeft outside");
  expect_detection_window(c, cut, other_hosts, before, after, "link down -> hostLeft inside");

  for (const auto& obs : observers)
    for (const auto& n : cut) {
      const auto leaves = c.all(obs.id, kind::node_left, n.id, before);
      ASSERT_EQ(leaves.size(), 1u) << obs.id << " about " << n.id;
      EXPECT_EQ(leaves[0].text, "link_lost") << obs.id << " about " << n.id;
    }

  ASSERT_EQ(c.wait_formed(rejoin_deadline), "") << "the host did not rejoin\n" << c.master_logs();
  std::vector<double> rejoin;
  for (const auto& obs : observers) {
    const auto joined = c.first(obs.id, kind::host_joined, cut_host, healed);
    ASSERT_TRUE(joined) << obs.id << " never saw the host join again";
    rejoin.push_back(*joined - healed);
  }
  report("link up -> hostJoined again", rejoin);
  expect_clean_history(c);
}

}  // namespace
}  // namespace galaxies::test::fault
