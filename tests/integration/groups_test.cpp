// Groups across real hosts (README "Groups", docs/protocol.md §4.3, §5.1): 3 hosts, 2 nodes each,
// attached from the test. Joins converge everywhere; a publish reaches every other member once, in
// order; a leave is seen once; a killed master's nodes leave their groups before they leave; a
// new host learns the groups from its peers' snapshots; and under churn every node's log of
// member changes alternates join, leave, join, ..., the same everywhere.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/cluster.hpp"
#include "support/eventually.hpp"

namespace galaxies::test {
namespace {

constexpr auto deadline = 20s;

// What one node handled of the publishes, per publisher: the payloads in order.
struct received {
  std::mutex mutex;
  std::map<std::string, std::vector<std::string>> by_publisher;
  std::size_t total() {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (const auto& [from, payloads] : by_publisher) n += payloads.size();
    return n;
  }
  std::vector<std::string> from(const std::string& publisher) {
    std::lock_guard lock(mutex);
    return by_publisher[publisher];
  }
};

class Groups : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) add_host_with_nodes(2);
    ASSERT_EQ(nodes_.size(), 6u);
    for (auto& n : nodes_) ASSERT_TRUE(n->wait_ready()) << "a node did not become ready";
    ASSERT_TRUE(eventually(deadline, [&] {
      for (auto& n : nodes_)
        if (n->nodes().size() != nodes_.size() - 1) return false;
      return true;
    })) << "the nodes did not all see each other";
  }

  void add_host_with_nodes(int count) {
    host_process& h = cluster_.add_host(with_workers(0));
    ASSERT_TRUE(eventually(deadline, [&] { return !h.address().empty(); })) << h.log();
    for (int i = 0; i < count; ++i) {
      nodes_.push_back(std::make_unique<test_node>(h.unix_path(), cluster_.name()));
      node_host_.push_back(cluster_.size() - 1);
      auto got = std::make_shared<received>();
      received_.push_back(got);
      nodes_.back()->run([got](node& n) {
        n.on("pub", [got](const message& m, responder) {
          std::lock_guard lock(got->mutex);
          got->by_publisher[m.from.to_string()].push_back(std::string(m.group) + ":" +
                                                          std::string(as_text(m.payload)));
        });
      });
    }
  }

  std::error_code join(std::size_t i, std::string_view g) {
    std::error_code ec;
    nodes_[i]->run([&](node& n) { ec = n.join(g); });
    return ec;
  }
  std::error_code leave(std::size_t i, std::string_view g) {
    std::error_code ec;
    nodes_[i]->run([&](node& n) { ec = n.leave(g); });
    return ec;
  }
  std::error_code publish(std::size_t i, std::string_view g, const std::string& payload) {
    std::error_code ec;
    nodes_[i]->run([&](node& n) { ec = n.publish(g, "pub", as_bytes(payload)); });
    return ec;
  }
  // Publishes, retrying while the members' credit is short.
  void publish_all(std::size_t i, std::string_view g, int count) {
    for (int k = 0; k < count; ++k) {
      std::error_code ec;
      ASSERT_TRUE(eventually(deadline, [&] {
        ec = publish(i, g, std::to_string(k));
        return ec != errc::overloaded;
      }));
      ASSERT_FALSE(ec) << ec.message();
    }
  }
  std::string id(std::size_t i) { return nodes_[i]->id().to_string(); }
  std::vector<std::string> ids(std::vector<std::size_t> which) {
    std::vector<std::string> out;
    for (auto i : which) out.push_back(id(i));
    std::sort(out.begin(), out.end());
    return out;
  }
  // Whether every node in `which` knows exactly `members` in `g`.
  bool converged(const std::vector<std::size_t>& which, std::string_view g,
                 const std::vector<std::string>& members) {
    for (auto i : which)
      if (nodes_[i]->members(g) != members) return false;
    return true;
  }
  std::vector<std::size_t> all() const {
    std::vector<std::size_t> out(nodes_.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = i;
    return out;
  }
  // The entries of `log` about node `who` in group `g` (or its departure).
  static std::vector<std::string> about(const std::vector<std::string>& log, const std::string& g,
                                        const std::string& who) {
    std::vector<std::string> out;
    for (const auto& e : log)
      if (e == "+" + g + " " + who || e == "-" + g + " " + who || e == "left " + who)
        out.push_back(e);
    return out;
  }

  cluster cluster_{"groups"};
  std::vector<std::unique_ptr<test_node>> nodes_;
  std::vector<std::size_t> node_host_;
  std::vector<std::shared_ptr<received>> received_;
};

TEST_F(Groups, JoinsConvergeAndAPublishReachesEveryOtherMemberOnceInOrder) {
  for (auto i : all()) ASSERT_FALSE(join(i, "g"));
  const auto everyone = ids(all());
  ASSERT_TRUE(eventually(deadline, [&] { return converged(all(), "g", everyone); }));
  // What an operator sees of it (`galaxies status`, /status.json): every master counts the six
  // members, two of them its own.
  for (std::size_t h = 0; h < cluster_.size(); ++h) {
    nlohmann::json shown;
    EXPECT_TRUE(eventually(deadline,
                           [&] {
                             const auto s = cluster_.host(h).status();
                             shown = s.is_null() ? nlohmann::json() : s["status"]["groups"];
                             return shown.value("memberships", 0) == 6;
                           }))
        << "host " << h << " shows " << shown.dump();
    EXPECT_EQ(shown["largest"], (nlohmann::json{{{"group", "g"}, {"members", 6}, {"local", 2}}}));
  }

  constexpr int count = 200;
  publish_all(0, "g", count);
  std::vector<std::string> expected;
  for (int k = 0; k < count; ++k) expected.push_back("g:" + std::to_string(k));
  ASSERT_TRUE(eventually(deadline, [&] {
    for (std::size_t i = 1; i < nodes_.size(); ++i)
      if (received_[i]->total() < count) return false;
    return true;
  }));
  for (std::size_t i = 1; i < nodes_.size(); ++i)
    EXPECT_EQ(received_[i]->from(id(0)), expected) << "node " << i;
  EXPECT_EQ(received_[0]->total(), 0u) << "the publisher got its own message";
  // Every node saw each join exactly once.
  for (auto i : all())
    for (auto j : all())
      EXPECT_EQ(about(nodes_[i]->membership_log(), "g", id(j)),
                std::vector<std::string>{"+g " + id(j)})
          << "node " << i << " about node " << j;
}

TEST_F(Groups, ALeaveIsSeenOnceAndTheLeaverGetsNoMore) {
  for (auto i : all()) ASSERT_FALSE(join(i, "g"));
  ASSERT_TRUE(eventually(deadline, [&] { return converged(all(), "g", ids(all())); }));
  ASSERT_FALSE(leave(3, "g"));
  const auto rest = ids({0, 1, 2, 4, 5});
  ASSERT_TRUE(eventually(deadline, [&] { return converged({0, 1, 2, 4, 5}, "g", rest); }));
  publish_all(0, "g", 10);
  ASSERT_TRUE(eventually(deadline, [&] { return received_[5]->total() == 10; }));
  EXPECT_EQ(received_[3]->total(), 0u);
  for (auto i : all())
    EXPECT_EQ(about(nodes_[i]->membership_log(), "g", id(3)),
              (std::vector<std::string>{"+g " + id(3), "-g " + id(3)}))
        << "node " << i;
}

TEST_F(Groups, AKilledMastersNodesLeaveTheirGroupsBeforeTheyLeave) {
  for (auto i : all()) {
    ASSERT_FALSE(join(i, "g"));
    ASSERT_FALSE(join(i, "h"));
  }
  ASSERT_TRUE(eventually(deadline, [&] { return converged(all(), "h", ids(all())); }));
  cluster_.host(2).kill9();  // nodes 4 and 5 are its
  const std::vector<std::size_t> survivors = {0, 1, 2, 3};
  ASSERT_TRUE(eventually(deadline, [&] { return converged(survivors, "g", ids(survivors)); }));
  ASSERT_TRUE(eventually(deadline, [&] { return converged(survivors, "h", ids(survivors)); }));
  for (auto i : survivors)
    for (std::size_t gone : {4, 5}) {
      const auto log = nodes_[i]->membership_log();
      auto g = about(log, "g", id(gone));
      auto h = about(log, "h", id(gone));
      // Joined once each, then one leave per group, then the node's departure, once.
      ASSERT_EQ(g.size(), 3u) << "node " << i;
      EXPECT_EQ(g,
                (std::vector<std::string>{"+g " + id(gone), "-g " + id(gone), "left " + id(gone)}));
      EXPECT_EQ(h,
                (std::vector<std::string>{"+h " + id(gone), "-h " + id(gone), "left " + id(gone)}));
    }
}

TEST_F(Groups, ANewHostLearnsTheGroupsFromItsPeers) {
  for (auto i : all()) ASSERT_FALSE(join(i, i % 2 ? "odd" : "even"));
  ASSERT_TRUE(eventually(deadline, [&] { return converged(all(), "odd", ids({1, 3, 5})); }));
  add_host_with_nodes(1);
  const std::size_t late = nodes_.size() - 1;
  ASSERT_TRUE(nodes_[late]->wait_ready());
  // Ready means its master's snapshot is complete, and its master may not have linked every peer
  // yet: wait for the groups themselves.
  ASSERT_TRUE(eventually(deadline, [&] {
    return nodes_[late]->members("odd") == ids({1, 3, 5}) &&
           nodes_[late]->members("even") == ids({0, 2, 4});
  }));
  for (std::size_t j = 0; j < late; ++j) {
    const std::string g = j % 2 ? "odd" : "even";
    EXPECT_EQ(about(nodes_[late]->membership_log(), g, id(j)),
              std::vector<std::string>{"+" + g + " " + id(j)});
  }
  // It can publish to them at once.
  ASSERT_FALSE(join(late, "odd"));
  ASSERT_TRUE(eventually(deadline, [&] { return converged({1}, "odd", ids({1, 3, 5, late})); }));
  publish_all(late, "odd", 5);
  ASSERT_TRUE(eventually(deadline, [&] {
    return received_[1]->total() == 5 && received_[3]->total() == 5 && received_[5]->total() == 5;
  }));
  EXPECT_EQ(received_[0]->total(), 0u);
}

TEST_F(Groups, UnderChurnEveryNodeSeesEachChangeOnceAndInOrder) {
  for (auto i : all()) ASSERT_FALSE(join(i, "churn"));
  ASSERT_TRUE(eventually(deadline, [&] { return converged(all(), "churn", ids(all())); }));
  // Nodes 1 and 4 (two hosts) leave and join again and again while node 0 publishes.
  constexpr int rounds = 30;
  std::atomic<bool> stop{false};
  std::atomic<int> published{0};
  std::thread publisher([&] {
    while (!stop) {
      const auto ec = publish(0, "churn", std::to_string(published.load()));
      if (!ec)
        ++published;
      else if (ec != errc::overloaded)
        ADD_FAILURE() << "publish: " << ec.message();
      std::this_thread::sleep_for(1ms);
    }
  });
  for (int r = 0; r < rounds; ++r)
    for (std::size_t i : {1, 4}) {
      // Interleaved with the publishes: each change waits for one more of them.
      ASSERT_TRUE(eventually(deadline, [&] { return published.load() > 2 * r; }));
      ASSERT_FALSE(leave(i, "churn"));
      ASSERT_FALSE(join(i, "churn"));
    }
  stop = true;
  publisher.join();
  ASSERT_TRUE(eventually(deadline, [&] {
    for (auto i : all())
      for (std::size_t c : {1, 4})
        if (about(nodes_[i]->membership_log(), "churn", id(c)).size() != 2 * rounds + 1)
          return false;
    return true;
  })) << "the changes did not all arrive";
  std::vector<std::string> expected;
  for (std::size_t c : {1, 4}) {
    expected = {"+churn " + id(c)};
    for (int r = 0; r < rounds; ++r) {
      expected.push_back("-churn " + id(c));
      expected.push_back("+churn " + id(c));
    }
    for (auto i : all())
      EXPECT_EQ(about(nodes_[i]->membership_log(), "churn", id(c)), expected)
          << "node " << i << " about node " << c;
  }
  ASSERT_TRUE(eventually(deadline, [&] { return converged(all(), "churn", ids(all())); }));
  // The steady members got every publish, in order; the churners a subsequence of them.
  ASSERT_GT(published.load(), 0);
  ASSERT_TRUE(eventually(deadline, [&] {
    return received_[2]->total() == static_cast<std::size_t>(published.load());
  }));
  for (std::size_t i = 1; i < nodes_.size(); ++i) {
    const auto got = received_[i]->from(id(0));
    std::vector<int> numbers;
    for (const auto& p : got) numbers.push_back(std::stoi(p.substr(6)));
    EXPECT_TRUE(std::is_sorted(numbers.begin(), numbers.end())) << "node " << i;
    EXPECT_EQ(std::adjacent_find(numbers.begin(), numbers.end()), numbers.end())
        << "node " << i << " got a publish twice";
  }
}

// With the built-in service's workers (3 hosts × 2): each joins on request, prints its group
// events, and one is killed.
TEST(GroupsOfWorkers, AKilledWorkerLeavesEachGroupOnceBeforeItLeaves) {
  cluster c("groups");
  std::vector<std::string> workers;
  for (int i = 0; i < 3; ++i) c.add_host(with_workers(2));
  for (std::size_t i = 0; i < 3; ++i) {
    const auto started = c.host(i).wait_started(2);
    ASSERT_EQ(started.size(), 2u) << c.host(i).log();
    workers.insert(workers.end(), started.begin(), started.end());
  }
  test_node t(c.host(0).unix_path(), c.name());
  ASSERT_TRUE(t.wait_ready());
  ASSERT_TRUE(eventually(deadline, [&] { return t.nodes().size() == workers.size(); }));
  for (const auto& w : workers)
    for (const char* g : {"g", "h"}) {
      const auto [ec, reply] = t.request(*node_id::parse(w), "join", g);
      ASSERT_FALSE(ec) << ec.message();
      EXPECT_EQ(as_text(reply), "ok");
    }
  // Every worker sees every worker join both groups (itself included), once.
  auto events_named = [&](const std::string& name) {
    std::vector<event> out;
    for (const auto& e : c.all_events())
      if (e.name == name) out.push_back(e);
    return out;
  };
  const std::size_t memberships = workers.size() * workers.size() * 2;
  ASSERT_TRUE(
      eventually(deadline, [&] { return events_named("groupJoined").size() >= memberships; }));
  ASSERT_EQ(events_named("groupJoined").size(), memberships);

  const std::string victim = workers[2];  // the first worker of the second host
  int victim_pid = 0;
  for (const auto& e : c.host(1).events())
    if (e.name == "started" && e.node == victim) victim_pid = e.pid;
  ASSERT_GT(victim_pid, 0);
  ASSERT_EQ(::kill(victim_pid, SIGKILL), 0);

  std::vector<std::string> others = workers;
  std::erase(others, victim);
  ASSERT_TRUE(eventually(deadline, [&] {
    const auto all = c.all_events();
    for (const auto& o : others)
      if (count(all, "nodeLeft", o, victim) != 1) return false;
    return true;
  })) << "the killed worker's departure did not reach every other worker";
  const auto all = c.all_events();
  for (const auto& o : others) {
    std::vector<std::string> about_victim;
    for (const auto& e : all)
      if (e.observer == o && e.node == victim && e.name != "nodeJoined")
        about_victim.push_back(
            e.name + (e.raw.contains("group") ? " " + e.raw["group"].get<std::string>() : ""));
    // Its joins, then one leave per group, then its departure, in that order.
    ASSERT_EQ(about_victim.size(), 5u) << o;
    EXPECT_EQ(about_victim[4], "nodeLeft") << o;
    std::vector<std::string> lefts(about_victim.begin() + 2, about_victim.begin() + 4);
    std::sort(lefts.begin(), lefts.end());
    EXPECT_EQ(lefts, (std::vector<std::string>{"groupLeft g", "groupLeft h"})) << o;
  }
}

}  // namespace
}  // namespace galaxies::test
