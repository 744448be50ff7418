// Failure detection on loopback: heartbeats on worker channels and host links, with shortened
// timers. A frozen worker is declared gone, killed and replaced; a frozen master is declared gone
// by its peers, its workers leave, and it rejoins when it resumes; a host that dials again
// replaces its old link, and its nodes leave and join again rather than being silently swapped.
// (The same faults on real test hosts in network namespaces are the `slow` tests in tests/fault.)
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "integration/membership_checks.hpp"
#include "support/fake_host.hpp"
#include "support/raw_connection.hpp"
#include "transport/endpoint.hpp"
#include "wire/control.hpp"

namespace galaxies::test {
namespace {

using clock = std::chrono::steady_clock;

// 100 ms x 5: a 500 ms detection time keeps the tests short; the window below is what a user may
// rely on for any configured time.
constexpr auto heartbeat = 100ms;
constexpr int misses = 5;
constexpr auto detection = heartbeat * misses;

host_options fast_detection(std::size_t workers) {
  host_options opts = with_workers(workers);
  opts.extra_args = {"--heartbeat-ms", std::to_string(heartbeat.count()), "--heartbeat-misses",
                     std::to_string(misses)};
  return opts;
}

int pid_of(const host_process& h, const std::string& node) {
  for (const auto& e : h.events())
    if (e.name == "started" && e.node == node) return e.pid;
  return 0;
}

// The names of the events `observer` saw about `subject`, in order, among `names`.
std::vector<std::string> history(const std::vector<event>& all, const std::string& observer,
                                 const std::string& subject,
                                 const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& e : all)
    if (e.observer == observer && (e.node.empty() ? e.host : e.node) == subject &&
        std::find(names.begin(), names.end(), e.name) != names.end())
      out.push_back(e.name + (e.reason.empty() ? "" : ":" + e.reason));
  return out;
}

TEST(failure_detection, a_frozen_worker_is_declared_gone_killed_and_replaced) {
  cluster c;
  c.add_host(fast_detection(2));
  c.add_host(fast_detection(1));
  auto a = c.host(0).wait_started(2, formation_deadline);
  auto b = c.host(1).wait_started(1, formation_deadline);
  ASSERT_EQ(a.size(), 2u) << c.host(0).log();
  ASSERT_EQ(b.size(), 1u) << c.host(1).log();
  std::string problem;
  ASSERT_TRUE(eventually(formation_deadline, [&] {
    problem = mesh_problem(c.all_events(), concat({a, b}), host_ids(c), true);
    return problem.empty();
  })) << problem;

  const std::string victim = a[0];
  const int victim_pid = pid_of(c.host(0), victim);
  ASSERT_GT(victim_pid, 0);
  const auto frozen_at = clock::now();
  ASSERT_EQ(::kill(victim_pid, SIGSTOP), 0);

  const std::vector<std::string> observers{a[1], b[0]};
  ASSERT_TRUE(eventually(formation_deadline, [&] {
    const auto all = c.all_events();
    return std::all_of(observers.begin(), observers.end(),
                       [&](const std::string& o) { return count(all, "nodeLeft", o, victim) > 0; });
  })) << c.host(0).log();
  const auto seen_after = clock::now() - frozen_at;
  // Not before the silence could have lasted 0.8 x the detection time: it was not the exit.
  EXPECT_GE(seen_after, detection * 8 / 10);

  const auto all = c.all_events();
  for (const auto& o : observers) {
    EXPECT_EQ(history(all, o, victim, {"nodeLeft"}), std::vector<std::string>{"nodeLeft:link_lost"})
        << o;
  }
  // Killed by its master (a stopped process dies of SIGKILL), then replaced by a new node.
  EXPECT_TRUE(eventually(10s, [&] { return process_exited(victim_pid); }))
      << "the frozen worker was not killed";
  const auto now_started = c.host(0).wait_started(2, formation_deadline);
  ASSERT_EQ(now_started.size(), 2u) << c.host(0).log();
  EXPECT_FALSE(contains(now_started, victim));
}

TEST(failure_detection, a_frozen_master_is_declared_gone_and_rejoins_when_it_resumes) {
  cluster c;
  c.add_host(fast_detection(1));
  c.add_host(fast_detection(1));
  const auto a = c.host(0).wait_started(1, formation_deadline);
  const auto b = c.host(1).wait_started(1, formation_deadline);
  ASSERT_EQ(a.size(), 1u) << c.host(0).log();
  ASSERT_EQ(b.size(), 1u) << c.host(1).log();
  const std::string host_b = c.host(1).host_id();
  ASSERT_TRUE(eventually(formation_deadline, [&] {
    return count(c.all_events(), "nodeJoined", a[0], b[0]) == 1 &&
           count(c.all_events(), "nodeJoined", b[0], a[0]) == 1;
  }));
  const int worker_b = pid_of(c.host(1), b[0]);
  ASSERT_GT(worker_b, 0);

  const auto frozen_at = clock::now();
  c.host(1).send_signal(SIGSTOP);
  ASSERT_TRUE(eventually(formation_deadline, [&] {
    return count(c.all_events(), "hostLeft", a[0], host_b) == 1;
  })) << c.host(0).log();
  EXPECT_GE(clock::now() - frozen_at, detection * 8 / 10);
  // Its worker hears nothing from its master either, and exits.
  EXPECT_TRUE(eventually(10s, [&] { return process_exited(worker_b); }))
      << "a worker of a frozen master did not exit";

  c.host(1).send_signal(SIGCONT);
  // Resumed, its master reaps the worker that left it and starts a new one: a new node.
  std::string b_again;
  ASSERT_TRUE(c.host(1).wait_events(formation_deadline, [&](const std::vector<event>& events) {
    for (const auto& e : events)
      if (e.name == "started" && e.node != b[0]) b_again = e.node;
    return !b_again.empty();
  })) << c.host(1).log();
  ASSERT_TRUE(eventually(formation_deadline,
                         [&] {
                           const auto all = c.all_events();
                           return count(all, "nodeJoined", a[0], b_again) == 1 &&
                                  count(all, "nodeJoined", b_again, a[0]) == 1;
                         }))
      << c.host(0).log() << c.host(1).log();

  const auto all = c.all_events();
  // The old worker left with the link. It may be announced once more when its master resumes:
  // the master can send its snapshot before it has read its dead worker's EOF, and then announces
  // the exit; joins and leaves still alternate, and it ends gone.
  const auto old_worker = history(all, a[0], b[0], {"nodeJoined", "nodeLeft"});
  const std::vector<std::string> expected{"nodeJoined", "nodeLeft:link_lost"};
  const std::vector<std::string> with_resumed_snapshot{"nodeJoined", "nodeLeft:link_lost",
                                                       "nodeJoined", "nodeLeft:exited"};
  EXPECT_TRUE(old_worker == expected || old_worker == with_resumed_snapshot)
      << testing::PrintToString(old_worker);
  EXPECT_EQ(history(all, a[0], host_b, {"hostJoined", "hostLeft"}),
            (std::vector<std::string>{"hostJoined", "hostLeft:link_lost", "hostJoined"}));
}

// A fake host: a raw TCP connection that says hello as host `self` and announces one node.
class redial : public ::testing::Test {
 protected:
  void SetUp() override {
    c_.add_host(with_workers(1));
    a_ = c_.host(0).wait_started(1, formation_deadline);
    ASSERT_EQ(a_.size(), 1u) << c_.host(0).log();
    const auto id = uuid::parse(c_.host(0).host_id());
    ASSERT_TRUE(id);
    target_ = *id;
    address_ = c_.host(0).address();
    ASSERT_FALSE(address_.empty());
  }

  std::size_t seen(const std::string& event, const std::string& who) {
    return count(c_.all_events(), event, a_[0], who);
  }
  fake_host::options as_p() const { return {address_, c_.name(), target_, std::nullopt, p_}; }

  cluster c_;
  std::vector<std::string> a_;
  uuid target_;
  std::string address_;
  const host_id p_ = host_id::random();
  const node_id x_ = node_id::random();
};

// A host dials again once it has declared its link dead and closed it: the new link is accepted
// and its nodes join again (never a silent swap).
TEST_F(redial, a_host_that_dials_again_after_closing_its_link_is_linked_again) {
  fake_host first(as_p());
  ASSERT_TRUE(first.join()) << c_.host(0).log();
  first.announce({x_});
  ASSERT_TRUE(eventually(formation_deadline, [&] {
    return seen("nodeJoined", x_.to_string()) == 1;
  })) << c_.host(0).log();

  first.connection().close();
  fake_host second(as_p());
  ASSERT_TRUE(second.join()) << "the new link was refused:\n" << c_.host(0).log();
  second.announce({x_});
  ASSERT_TRUE(eventually(formation_deadline, [&] {
    return seen("nodeJoined", x_.to_string()) == 2;
  })) << c_.host(0).log();

  const auto all = c_.all_events();
  EXPECT_EQ(history(all, a_[0], x_.to_string(), {"nodeJoined", "nodeLeft"}),
            (std::vector<std::string>{"nodeJoined", "nodeLeft:host_left", "nodeJoined"}));
  EXPECT_EQ(history(all, a_[0], p_.to_string(), {"hostJoined", "hostLeft"}),
            (std::vector<std::string>{"hostJoined", "hostLeft:host_left", "hostJoined"}));
}

// A hello is only a claim: one naming a host whose link is alive is refused, and the live link,
// its nodes and its traffic stay (a peer re-saying hello with another host's UUID must not make
// the real link flap).
TEST_F(redial, a_hello_claiming_a_live_host_is_refused_and_its_link_stays) {
  fake_host first(as_p());
  ASSERT_TRUE(first.join()) << c_.host(0).log();
  first.announce({x_});
  ASSERT_TRUE(eventually(formation_deadline, [&] {
    return seen("nodeJoined", x_.to_string()) == 1;
  })) << c_.host(0).log();

  for (int attempt = 0; attempt < 2; ++attempt) {
    fake_host impostor(as_p());
    EXPECT_FALSE(impostor.join(10s));
    ASSERT_TRUE(impostor.refusal());
    EXPECT_EQ(impostor.refusal()->code, wire::refuse_code::duplicate_link);
  }
  // The first link is still the host's link: nothing left, and it was never closed.
  EXPECT_EQ(seen("nodeLeft", x_.to_string()), 0u);
  EXPECT_EQ(seen("hostLeft", p_.to_string()), 0u);
  const auto still = first.connection().read_until_closed(200ms);
  EXPECT_FALSE(still.closed) << "the live link was closed";
}

}  // namespace
}  // namespace galaxies::test
