// Checks over the workers' event lines shared by the membership tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "support/cluster.hpp"
#include "support/eventually.hpp"

namespace galaxies::test {

// Cluster formation on a noisy 2-core machine shared with other builds.
constexpr auto formation_deadline = 20s;

inline bool contains(const std::vector<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

inline std::vector<std::string> concat(const std::vector<std::vector<std::string>>& parts) {
  std::vector<std::string> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

// What is missing (at_least) or not exactly once (!at_least) for a full mesh: every worker saw
// nodeJoined for every other worker and hostJoined for every host. "" when nothing is.
inline std::string mesh_problem(const std::vector<event>& all,
                                const std::vector<std::string>& workers,
                                const std::vector<std::string>& hosts, bool at_least) {
  auto wrong = [&](std::size_t n) { return at_least ? n == 0 : n != 1; };
  for (const auto& w : workers) {
    for (const auto& x : workers) {
      if (x == w) continue;
      const auto n = count(all, "nodeJoined", w, x);
      if (wrong(n))
        return "worker " + w + " saw nodeJoined(" + x + ") " + std::to_string(n) + " times";
    }
    for (const auto& h : hosts) {
      const auto n = count(all, "hostJoined", w, h);
      if (wrong(n))
        return "worker " + w + " saw hostJoined(" + h + ") " + std::to_string(n) + " times";
    }
  }
  return {};
}

// Every event named `name` (nodeLeft, hostLeft) seen by one of `observers`, as text.
inline std::vector<std::string> events_named(const std::vector<event>& all, std::string_view name,
                                             const std::vector<std::string>& observers = {}) {
  std::vector<std::string> found;
  for (const auto& e : all)
    if (e.name == name && (observers.empty() || contains(observers, e.observer)))
      found.push_back(e.raw.dump());
  return found;
}

inline std::vector<std::string> host_ids(cluster& c) {
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < c.size(); ++i) ids.push_back(c.host(i).host_id());
  return ids;
}

// A sync point: attaches a node to `h` and waits until every one of `observers` printed its
// nodeJoined. A worker prints its events in order, so whatever it printed before that line is by
// then in the harness's hands: an exactly-once check made afterwards cannot miss an earlier
// duplicate. Null (and a failure recorded) when the probe does not get through in time.
inline std::unique_ptr<test_node> sync_with_workers(cluster& c, host_process& h,
                                                    const std::vector<std::string>& observers) {
  auto probe = std::make_unique<test_node>(h.unix_path(), c.name());
  if (!probe->wait_ready()) {
    ADD_FAILURE() << "probe node did not get ready on " << h.name();
    return nullptr;
  }
  const std::string id = probe->id().to_string();
  const bool seen = eventually(formation_deadline, [&] {
    const auto all = c.all_events();
    return std::all_of(observers.begin(), observers.end(),
                       [&](const std::string& w) { return count(all, "nodeJoined", w, id) > 0; });
  });
  if (!seen) {
    ADD_FAILURE() << "not every worker saw the probe node " << id << " join";
    return nullptr;
  }
  return probe;
}

// Waits for the full mesh, then syncs and checks that nothing came twice and nothing left.
inline void expect_full_mesh(cluster& c, const std::vector<std::string>& workers,
                             const std::vector<std::string>& hosts) {
  std::string problem;
  const bool formed = eventually(formation_deadline, [&] {
    problem = mesh_problem(c.all_events(), workers, hosts, true);
    return problem.empty();
  });
  ASSERT_TRUE(formed) << problem;
  const auto probe = sync_with_workers(c, c.host(0), workers);
  ASSERT_TRUE(probe);
  const auto all = c.all_events();
  EXPECT_EQ(mesh_problem(all, workers, hosts, false), "");
  EXPECT_EQ(events_named(all, "nodeLeft"), std::vector<std::string>{});
  EXPECT_EQ(events_named(all, "hostLeft"), std::vector<std::string>{});
}

}  // namespace galaxies::test
