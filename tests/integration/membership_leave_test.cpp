// Membership as the workers see it while nodes and hosts go: a crashed worker, a killed master and
// a graceful stop are each seen everywhere exactly once, with the reason, and nothing lingers.
#include <gtest/gtest.h>
#include <signal.h>

#include "integration/membership_checks.hpp"
#include "registry/file_store.hpp"

namespace galaxies::test {
namespace {

using clock = std::chrono::steady_clock;

// Starts hosts with the given worker counts and waits until every worker saw every other.
// Returns each host's worker ids.
std::vector<std::vector<std::string>> form(cluster& c, const std::vector<std::size_t>& workers) {
  for (const auto n : workers) c.add_host(with_workers(n));
  std::vector<std::vector<std::string>> per_host;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    per_host.push_back(c.host(i).wait_started(workers[i], formation_deadline));
    EXPECT_EQ(per_host.back().size(), workers[i]) << c.host(i).name() << ":\n" << c.host(i).log();
  }
  std::string problem;
  EXPECT_TRUE(eventually(formation_deadline, [&] {
    problem = mesh_problem(c.all_events(), concat(per_host), host_ids(c), true);
    return problem.empty();
  })) << problem;
  return per_host;
}

// Waits until each observer saw `name` about each subject at least once.
bool all_saw(cluster& c, std::string_view name, const std::vector<std::string>& observers,
             const std::vector<std::string>& subjects) {
  return eventually(formation_deadline, [&] {
    const auto all = c.all_events();
    for (const auto& o : observers)
      for (const auto& s : subjects)
        if (count(all, name, o, s) == 0) return false;
    return true;
  });
}

// Checks that each observer saw `name` about each subject exactly once, with `reason`.
void expect_once_with_reason(const std::vector<event>& all, std::string_view name,
                             const std::vector<std::string>& observers,
                             const std::vector<std::string>& subjects, const std::string& reason) {
  for (const auto& o : observers)
    for (const auto& s : subjects) {
      EXPECT_EQ(count(all, name, o, s), 1u) << o << " about " << s;
      for (const auto& e : all) {
        if (e.name == name && e.observer == o && (e.node.empty() ? e.host : e.node) == s) {
          EXPECT_EQ(e.reason, reason) << e.raw.dump();
        }
      }
    }
}

// The nodeLeft events whose node is not one of `expected`.
std::vector<std::string> unexpected_leaves(const std::vector<event>& all,
                                           const std::vector<std::string>& expected,
                                           const std::vector<std::string>& observers) {
  std::vector<std::string> found;
  for (const auto& e : all)
    if (e.name == "nodeLeft" && contains(observers, e.observer) && !contains(expected, e.node))
      found.push_back(e.raw.dump());
  return found;
}

bool all_exited(const std::vector<int>& pids) {
  return std::all_of(pids.begin(), pids.end(), [](int pid) { return process_exited(pid); });
}

TEST(membership_leave, a_killed_worker_leaves_everywhere_once_and_is_replaced) {
  cluster c;
  const auto per_host = form(c, {2, 2, 2});
  ASSERT_FALSE(HasFailure());
  const std::string victim = per_host[0][0];
  int victim_pid = 0;
  for (const auto& e : c.host(0).events())
    if (e.name == "started" && e.node == victim) victim_pid = e.pid;
  ASSERT_GT(victim_pid, 0);
  std::vector<std::string> others = concat(per_host);
  std::erase(others, victim);

  // The requester sits on another host, so the failure has to cross a host link.
  test_node t(c.host(1).unix_path(), c.name());
  ASSERT_TRUE(t.wait_ready());
  const auto victim_id = *node_id::parse(victim);
  ASSERT_TRUE(eventually(formation_deadline, [&] { return contains(t.joined(), victim); }));
  auto held = t.request_async(victim_id, "hold", "", 60s);
  // Requests are FIFO per pair: once the echo is answered, the hold is pending at the victim.
  const auto [echo_error, echo] = t.request(victim_id, "echo", "x", 10s);
  ASSERT_FALSE(echo_error) << echo_error.message();

  ASSERT_EQ(held.wait_for(0s), std::future_status::timeout) << "the hold was answered";
  const auto killed_at = clock::now();
  ASSERT_EQ(::kill(victim_pid, SIGKILL), 0);
  ASSERT_EQ(held.wait_for(10s), std::future_status::ready) << "the hold outlived its target";
  const auto took = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - killed_at);
  EXPECT_EQ(held.get().first, make_error_code(errc::node_left));
  RecordProperty("node_left_after_us", static_cast<int>(took.count()));

  EXPECT_TRUE(all_saw(c, "nodeLeft", others, {victim}));
  EXPECT_TRUE(eventually(formation_deadline, [&] { return contains(t.left(), victim); }));

  // The master respawns the slot as a new node, which joins everywhere.
  std::string fresh;
  ASSERT_TRUE(c.host(0).wait_events(formation_deadline, [&](const std::vector<event>& all) {
    for (const auto& e : all)
      if (e.name == "started" && !contains(per_host[0], e.node)) fresh = e.node;
    return !fresh.empty();
  }));
  EXPECT_TRUE(all_saw(c, "nodeJoined", others, {fresh}));
  EXPECT_TRUE(all_saw(c, "nodeJoined", {fresh}, others));
  EXPECT_TRUE(eventually(formation_deadline, [&] { return contains(t.joined(), fresh); }));

  auto everyone = others;
  everyone.push_back(fresh);
  const auto probe = sync_with_workers(c, c.host(2), everyone);
  ASSERT_TRUE(probe);
  const auto all = c.all_events();
  expect_once_with_reason(all, "nodeLeft", others, {victim}, "exited");
  expect_once_with_reason(all, "nodeJoined", others, {fresh}, "");
  EXPECT_EQ(count(all, "nodeLeft", fresh, victim), 0u) << "the new node never knew the old one";
  EXPECT_EQ(unexpected_leaves(all, {victim}, everyone), std::vector<std::string>{});
  EXPECT_EQ(events_named(all, "hostLeft"), std::vector<std::string>{});
  const auto left = t.left_reasons();
  ASSERT_EQ(std::count_if(left.begin(), left.end(), [&](auto& l) { return l.first == victim; }), 1)
      << "the attached node saw it leave more than once";
  for (const auto& [id, why] : left) {
    if (id == victim) {
      EXPECT_EQ(why, leave_reason::exited);
    }
  }
}

TEST(membership_leave, a_killed_master_takes_its_nodes_and_workers_with_it) {
  cluster c;
  const auto per_host = form(c, {3, 2, 2});
  ASSERT_FALSE(HasFailure());
  auto& gone = c.host(0);
  const auto gone_nodes = per_host[0];
  const auto gone_pids = gone.worker_pids();
  const std::string gone_host = gone.host_id();
  const auto observers = concat({per_host[1], per_host[2]});

  gone.kill9();
  EXPECT_TRUE(all_saw(c, "nodeLeft", observers, gone_nodes));
  EXPECT_TRUE(all_saw(c, "hostLeft", observers, {gone_host}));
  // Its workers are not our children: they must notice the master's end by themselves.
  EXPECT_TRUE(eventually(10s, [&] { return all_exited(gone_pids); }));

  const auto probe = sync_with_workers(c, c.host(1), observers);
  ASSERT_TRUE(probe);
  const auto all = c.all_events();
  expect_once_with_reason(all, "nodeLeft", observers, gone_nodes, "host_left");
  expect_once_with_reason(all, "hostLeft", observers, {gone_host}, "host_left");
  EXPECT_EQ(unexpected_leaves(all, gone_nodes, observers), std::vector<std::string>{});
}

TEST(membership_leave, a_stopped_host_leaves_gracefully_and_completely) {
  cluster c;
  const auto per_host = form(c, {2, 2, 2});
  ASSERT_FALSE(HasFailure());
  auto& gone = c.host(2);
  const auto gone_nodes = per_host[2];
  const auto gone_pids = gone.worker_pids();
  const std::string gone_host = gone.host_id();
  const auto observers = concat({per_host[0], per_host[1]});

  gone.terminate();
  ASSERT_FALSE(gone.running());
  // The master removes its row before it exits.
  const auto rows = registry::file_store::load(c.registry_dir().string()).rows;
  EXPECT_TRUE(std::none_of(rows.begin(), rows.end(), [&](const registry::host_record& r) {
    return r.id.to_string() == gone_host;
  }));
  EXPECT_TRUE(eventually(5s, [&] { return all_exited(gone_pids); }));
  EXPECT_TRUE(all_saw(c, "nodeLeft", observers, gone_nodes));
  EXPECT_TRUE(all_saw(c, "hostLeft", observers, {gone_host}));

  const auto probe = sync_with_workers(c, c.host(0), observers);
  ASSERT_TRUE(probe);
  const auto all = c.all_events();
  expect_once_with_reason(all, "nodeLeft", observers, gone_nodes, "graceful");
  expect_once_with_reason(all, "hostLeft", observers, {gone_host}, "graceful");
  EXPECT_EQ(unexpected_leaves(all, gone_nodes, observers), std::vector<std::string>{});
}

}  // namespace
}  // namespace galaxies::test
