// Worker slots and graceful drain across real hosts (docs/protocol.md §5, §5.2): a node on another
// host sees a worker's slot, the worker's respawn takes the slot back with a new id; a stopping
// master's worker finishes its requests in flight before it leaves, or is killed after stop_grace.
// The workers run the CLI's built-in service; the observer attaches from this process.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "support/cluster.hpp"
#include "support/eventually.hpp"

namespace galaxies::test {
namespace {

using steady = std::chrono::steady_clock;

// Generous: two cores shared with other builds and tests.
constexpr auto formation_deadline = 20s;

// What `node` says of itself (the built-in whoami): its own slot, as node::slot() gives it.
nlohmann::json whoami(test_node& t, const node_id& node) {
  const auto [ec, reply] = t.request(node, "whoami", "", 10s);
  EXPECT_FALSE(ec) << ec.message();
  return ec ? nlohmann::json() : nlohmann::json::parse(as_text(reply), nullptr, false);
}

std::optional<node_info> in_slot(test_node& t, const galaxies::slot& s) {
  std::optional<node_info> found;
  t.run([&](node& n) { found = n.node_in(s); });
  return found;
}

std::optional<leave_reason> reason_left(test_node& t, const node_id& id) {
  for (const auto& [left, why] : t.left_reasons())
    if (left == id.to_string()) return why;
  return std::nullopt;
}

// Host A with `workers` running the given extra options, host B with none, and a node attached
// to B: what it sees of A crossed the host link.
struct two_hosts {
  explicit two_hosts(std::size_t workers, std::vector<std::string> extra = {}) {
    host_options a = with_workers(workers);
    a.extra_args = std::move(extra);
    c.add_host(a);
    c.add_host(with_workers(0));
    started = c.host(0).wait_started(workers, formation_deadline);
    // B listens once it says where: attached earlier, the observer finds no socket and gives up
    // (its wait_ready() then fails at once).
    b_up = eventually(formation_deadline, [&] { return !c.host(1).address().empty(); });
    observer.emplace(c.host(1).unix_path(), c.name());
  }
  host_id a_id() { return host_id::parse(c.host(0).host_id()).value_or(host_id{}); }
  // The observer knows a worker of A in every one of A's slots.
  bool sees_all_of_a(std::size_t workers) {
    const host_id a = a_id();
    for (std::uint32_t i = 0; i < workers; ++i)
      if (!in_slot(*observer, {a, i})) return false;
    return true;
  }

  cluster c;
  std::vector<std::string> started;
  bool b_up = false;
  std::optional<test_node> observer;
};

TEST(worker_slots, a_respawned_worker_takes_its_slot_back_with_a_new_id) {
  two_hosts h(3);
  ASSERT_EQ(h.started.size(), 3u);
  ASSERT_TRUE(h.b_up) << h.c.host(1).log();
  test_node& t = *h.observer;
  ASSERT_TRUE(t.wait_ready());
  const host_id a = h.a_id();
  ASSERT_FALSE(a.is_nil());
  ASSERT_TRUE(eventually(formation_deadline, [&] { return h.sees_all_of_a(3); }));

  // Each of A's nodes came with a distinct slot, and says the same of itself.
  std::vector<std::uint32_t> slots;
  for (const auto& n : t.nodes()) {
    ASSERT_TRUE(n.slot.has_value()) << n.id.to_string();
    EXPECT_EQ(n.slot->host, a);
    slots.push_back(n.slot->index);
    const auto me = whoami(t, n.id);
    EXPECT_EQ(me.value("slot", -1), static_cast<int>(n.slot->index));
    EXPECT_EQ(me.value("host", ""), a.to_string());
  }
  std::ranges::sort(slots);
  EXPECT_EQ(slots, (std::vector<std::uint32_t>{0, 1, 2}));

  const galaxies::slot target{a, 1};
  const node_info before = *in_slot(t, target);
  ASSERT_EQ(::kill(static_cast<pid_t>(before.pid), SIGKILL), 0);

  // Its nodeLeft, then a new node in the same slot.
  ASSERT_TRUE(
      eventually(formation_deadline, [&] { return reason_left(t, before.id).has_value(); }));
  EXPECT_EQ(reason_left(t, before.id), leave_reason::exited);
  std::optional<node_info> after;
  ASSERT_TRUE(eventually(formation_deadline, [&] {
    after = in_slot(t, target);
    return after && after->id != before.id;
  })) << "slot 1 was not filled again";
  EXPECT_EQ(after->slot, target);
  EXPECT_NE(after->pid, before.pid);
  const auto joined = t.joined();
  const auto old_at = std::ranges::find(joined, before.id.to_string());
  const auto new_at = std::ranges::find(joined, after->id.to_string());
  ASSERT_NE(new_at, joined.end());
  EXPECT_LT(old_at, new_at);
  // node.slot() in the new worker names the slot it took back.
  const auto me = whoami(t, after->id);
  EXPECT_EQ(me.value("slot", -1), 1);
  EXPECT_EQ(me.value("node", ""), after->id.to_string());
  // The worker's own events name it too, as does the master's status.
  EXPECT_TRUE(h.c.host(0).wait_events(formation_deadline, [&](const std::vector<event>& all) {
    return std::ranges::any_of(all, [&](const event& e) {
      return e.name == "started" && e.node == after->id.to_string() && e.raw.value("slot", -1) == 1;
    });
  }));
  const nlohmann::json status = h.c.host(0).status();
  ASSERT_TRUE(status.is_object());
  bool listed = false;
  for (const auto& n : status["status"]["nodes"])
    if (n.value("node", "") == after->id.to_string()) listed = n.value("slot", -1) == 1;
  EXPECT_TRUE(listed) << status["status"]["nodes"].dump();
}

TEST(worker_drain, a_stopping_workers_request_in_flight_is_answered_before_it_leaves) {
  two_hosts h(1, {"--drain", "--stop-grace-ms", "15000"});
  ASSERT_EQ(h.started.size(), 1u);
  ASSERT_TRUE(h.b_up) << h.c.host(1).log();
  test_node& t = *h.observer;
  ASSERT_TRUE(t.wait_ready());
  ASSERT_TRUE(eventually(formation_deadline, [&] { return h.sees_all_of_a(1); }));
  const node_id w = in_slot(t, {h.a_id(), 0})->id;

  auto slow = t.request_async(w, "delay", "1500", 30s);
  // FIFO per pair: once the echo is answered, the delay is in the worker's hands.
  ASSERT_FALSE(t.request(w, "echo", "x", 10s).first);
  const auto stop_at = steady::now();
  h.c.host(0).request_stop();

  ASSERT_TRUE(h.c.host(0).wait_events(formation_deadline, [&](const std::vector<event>& all) {
    return std::ranges::any_of(all, [&](const event& e) { return e.name == "stopping"; });
  })) << "the worker was not told";
  // Draining, it is still reached, and answers.
  const auto [during_error, during] = t.request(w, "echo", "during the drain", 10s);
  EXPECT_FALSE(during_error) << during_error.message();
  EXPECT_EQ(as_text(during), "during the drain");

  ASSERT_EQ(slow.wait_for(30s), std::future_status::ready);
  const auto [slow_error, slow_reply] = slow.get();
  EXPECT_FALSE(slow_error) << slow_error.message();
  EXPECT_EQ(as_text(slow_reply), "done");
  ASSERT_TRUE(eventually(formation_deadline, [&] { return reason_left(t, w).has_value(); }));
  EXPECT_EQ(reason_left(t, w), leave_reason::graceful) << "it said goodbye, it was not killed";
  EXPECT_TRUE(eventually(formation_deadline, [&] { return !h.c.host(0).running(); }));
  EXPECT_LT(steady::now() - stop_at, 12s) << "the master waited for the grace, not the drain";
}

TEST(worker_drain, a_worker_that_never_finishes_draining_is_killed_after_stop_grace) {
  constexpr auto grace = 1500ms;
  two_hosts h(1, {"--drain", "--stop-grace-ms", std::to_string(grace.count())});
  ASSERT_EQ(h.started.size(), 1u);
  ASSERT_TRUE(h.b_up) << h.c.host(1).log();
  test_node& t = *h.observer;
  ASSERT_TRUE(t.wait_ready());
  ASSERT_TRUE(eventually(formation_deadline, [&] { return h.sees_all_of_a(1); }));
  const node_id w = in_slot(t, {h.a_id(), 0})->id;

  auto held = t.request_async(w, "hold", "", 60s);  // never answered: the drain never ends
  ASSERT_FALSE(t.request(w, "echo", "x", 10s).first);
  const auto stop_at = steady::now();
  h.c.host(0).request_stop();

  ASSERT_EQ(held.wait_for(30s), std::future_status::ready);
  const auto waited = steady::now() - stop_at;
  EXPECT_EQ(held.get().first, make_error_code(errc::node_left));
  EXPECT_GE(waited, grace) << "killed before its grace ran out";
  ASSERT_TRUE(eventually(formation_deadline, [&] { return reason_left(t, w).has_value(); }));
  EXPECT_EQ(reason_left(t, w), leave_reason::exited) << "killed, so no goodbye";
  EXPECT_TRUE(eventually(formation_deadline, [&] { return !h.c.host(0).running(); }));
  EXPECT_NE(h.c.host(0).log().find("killing it"), std::string::npos) << h.c.host(0).log();
}

}  // namespace
}  // namespace galaxies::test
