// Membership as the workers see it while hosts come up: every node and host joins exactly once,
// two hosts dialling each other at once end with one link, and a stale registry row neither
// joins the wrong host nor holds anyone up. Leaving is in membership_leave_test.cpp.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <set>

#include "integration/membership_checks.hpp"
#include "registry/file_store.hpp"
#include "support/host_tools.hpp"

namespace galaxies::test {
namespace {

std::vector<std::string> wait_workers(host_process& h, std::size_t n) {
  auto ids = h.wait_started(n, formation_deadline);
  EXPECT_EQ(ids.size(), n) << h.name() << " log:\n" << h.log();
  return ids;
}

TEST(membership, hosts_started_together_see_every_node_and_host_exactly_once) {
  cluster c;
  // No waiting between starts: the hosts discover each other while all are still starting.
  for (int i = 0; i < 3; ++i) c.add_host(with_workers(3));
  std::vector<std::vector<std::string>> per_host;
  for (std::size_t i = 0; i < 3; ++i) per_host.push_back(wait_workers(c.host(i), 3));
  const auto workers = concat(per_host);
  ASSERT_EQ(workers.size(), 9u);
  const auto hosts = host_ids(c);
  expect_full_mesh(c, workers, hosts);
}

TEST(membership, hosts_joining_a_running_cluster_see_every_node_and_host_exactly_once) {
  cluster c;
  auto a = wait_workers(c.add_host(with_workers(3)), 3);
  auto b = wait_workers(c.add_host(with_workers(3)), 3);
  // The third host starts only once the first two are linked: its workers learn the others from
  // the snapshot, and the others learn its workers as deltas.
  std::string problem;
  ASSERT_TRUE(eventually(formation_deadline, [&] {
    problem = mesh_problem(c.all_events(), concat({a, b}),
                           {c.host(0).host_id(), c.host(1).host_id()}, true);
    return problem.empty();
  })) << problem;
  auto d = wait_workers(c.add_host(with_workers(3)), 3);
  const auto workers = concat({a, b, d});
  ASSERT_EQ(workers.size(), 9u);
  expect_full_mesh(c, workers, host_ids(c));
}

// The linked peers a host's status lists.
std::vector<nlohmann::json> linked_peers(const nlohmann::json& status) {
  std::vector<nlohmann::json> linked;
  if (status.is_null()) return linked;
  for (const auto& p : status["status"]["peers"])
    if (p.value("state", "") == "linked") linked.push_back(p);
  return linked;
}

TEST(membership, hosts_dialling_each_other_at_once_keep_exactly_one_link) {
  int both_dialled = 0;  // rounds in which the duplicate-link rule had to decide
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    cluster c;
    auto& a = c.add_host(with_workers(1));
    auto& b = c.add_host(with_workers(1));
    const auto workers = concat({wait_workers(a, 1), wait_workers(b, 1)});
    ASSERT_EQ(workers.size(), 2u);
    const std::string id_a = a.host_id(), id_b = b.host_id();

    nlohmann::json sa, sb;
    ASSERT_TRUE(eventually(formation_deadline,
                           [&] {
                             sa = a.status();
                             sb = b.status();
                             return !linked_peers(sa).empty() && !linked_peers(sb).empty();
                           }))
        << "a: " << sa.dump() << "\nb: " << sb.dump();
    expect_full_mesh(c, workers, {id_a, id_b});

    // After the sync point: a second link, or one torn down, would show by now.
    sa = a.status();
    sb = b.status();
    const auto la = linked_peers(sa), lb = linked_peers(sb);
    ASSERT_EQ(la.size(), 1u) << sa.dump();
    ASSERT_EQ(lb.size(), 1u) << sb.dump();
    EXPECT_EQ(la[0].value("host", ""), id_b);
    EXPECT_EQ(lb[0].value("host", ""), id_a);
    const bool a_dialled = la[0].value("dialled_by_us", false);
    EXPECT_NE(a_dialled, lb[0].value("dialled_by_us", false))
        << "both ends must describe the same link";
    // When both dialled, the rule is fixed: the link dialled by the smaller UUID wins (§6).
    const std::string refusal = "both hosts dialled";
    if (a.log().find(refusal) != std::string::npos || b.log().find(refusal) != std::string::npos) {
      ++both_dialled;
      const auto smaller = *uuid::parse(id_a) < *uuid::parse(id_b) ? id_a : id_b;
      EXPECT_EQ(a_dialled ? id_a : id_b, smaller) << "the link dialled by the larger uuid won";
    }
  }
  RecordProperty("rounds_with_simultaneous_dial", both_dialled);
}

// Stops `h`, then adds `row` as the file backend does: a complete row file renamed into place.
void stop_host_and_insert_row(const cluster& c, host_process& h, const registry::host_record& row) {
  h.send_signal(SIGSTOP);
  ASSERT_TRUE(eventually(5s, [&] { return tools::state(h.pid()) == 'T'; }));
  const auto ec = registry::file_store::write_row(c.registry_dir().string(), row);
  ASSERT_FALSE(ec) << ec.message();
}

bool registry_has(const cluster& c, const std::string& id) {
  const auto parsed = host_id::parse(id);
  return parsed && registry::file_store::load_row(c.registry_dir().string(), *parsed).row;
}

// The state of `peer` in a host's status ("" when it lists no such peer).
std::string peer_state(const nlohmann::json& status, const std::string& peer) {
  if (status.is_null()) return "(no answer)";
  for (const auto& p : status["status"]["peers"])
    if (p.value("host", "") == peer) return p.value("state", "");
  return "";
}

TEST(membership, a_stale_registry_row_is_refused_removed_and_blocks_no_one) {
  cluster c;
  auto& a = c.add_host(with_workers(1));
  const auto a_workers = wait_workers(a, 1);
  ASSERT_EQ(a_workers.size(), 1u);
  const std::string address = a.address();
  ASSERT_FALSE(address.empty());
  const std::string id_a = a.host_id();

  // A row left by a host that is gone, at the address where A now listens. A would notice it
  // and clear it in milliseconds, long before B has read the registry; stopped, A lets B's dial
  // to the stale UUID reach its accept queue first.
  registry::host_record stale_row;
  stale_row.id = host_id::random();
  stale_row.cluster = c.name();
  stale_row.address = address;
  stale_row.expires_ms = registry::file_store::now_ms() + 600'000;  // far beyond the test
  const std::string stale_text = stale_row.id.to_string();
  stop_host_and_insert_row(c, a, stale_row);
  ASSERT_FALSE(HasFatalFailure());

  auto& b = c.add_host(with_workers(1));
  nlohmann::json sb;
  const bool b_dials_stale = eventually(formation_deadline, [&] {
    sb = b.status();
    return peer_state(sb, stale_text) == "dialling";
  });
  a.send_signal(SIGCONT);
  ASSERT_TRUE(b_dials_stale) << sb.dump();

  // A refuses it (wrong_target), B says so and drops the row.
  const std::string refused = "refused: wrong_target";
  EXPECT_TRUE(eventually(formation_deadline,
                         [&] {
                           const auto log = b.log();
                           return log.find(refused) != std::string::npos &&
                                  log.find(stale_text) != std::string::npos;
                         }))
      << "b log:\n"
      << b.log();
  EXPECT_NE(a.log().find("not " + stale_text), std::string::npos) << "a log:\n" << a.log();
  EXPECT_TRUE(eventually(formation_deadline, [&] { return !registry_has(c, stale_text); }));
  EXPECT_TRUE(registry_has(c, id_a));
  EXPECT_TRUE(eventually(formation_deadline, [&] {
    return peer_state(b.status(), stale_text).empty();
  })) << b.status().dump();

  // And A and B link as if the row had never been there.
  const auto b_workers = wait_workers(b, 1);
  ASSERT_EQ(b_workers.size(), 1u);
  expect_full_mesh(c, concat({a_workers, b_workers}), {id_a, b.host_id()});
  EXPECT_EQ(peer_state(a.status(), b.host_id()), "linked");
  EXPECT_EQ(peer_state(b.status(), id_a), "linked");
}

// The fds of this process that are not close-on-exec.
std::set<int> inheritable_fds() {
  std::set<int> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(entry.path().filename().string());
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) == 0) fds.insert(fd);
  }
  return fds;
}

// A child process holding an attached node's socket would keep that node registered after the
// process that attached it is gone: the node would never be seen leaving.
TEST(membership, an_attached_node_shares_no_fd_with_child_processes) {
  const auto before = inheritable_fds();  // stdio and whatever the test runner passed down
  cluster c;
  auto& h = c.add_host(with_workers(1));
  ASSERT_EQ(h.wait_started(1).size(), 1u);
  test_node t(h.unix_path(), c.name());
  ASSERT_TRUE(t.wait_ready());
  ASSERT_FALSE(h.status().is_null());
  std::vector<int> leaked;
  for (const int fd : inheritable_fds())
    if (!before.contains(fd)) leaked.push_back(fd);
  EXPECT_EQ(leaked, std::vector<int>{}) << "fds without FD_CLOEXEC (see /proc/self/fd)";
}

}  // namespace
}  // namespace galaxies::test
