// The event-log checker on synthetic logs: a clean history passes, and each rule catches one
// history that breaks it.
#include "event_log_checker.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

namespace galaxies::test::fault {
namespace {

using json = nlohmann::json;

// Builds node logs line by line; time advances by 1 ms per line.
class history {
 public:
  void line(const std::string& node, json fields) {
    fields["t_ms"] = ++t_;
    logs_.add_line(node + ".jsonl", fields.dump());
  }
  void boot(const std::string& node, const std::string& host = "H") {
    line(node, {{"ev", "boot"}, {"me", node}, {"pid", 100}, {"label", "x"}});
    line(node, {{"ev", "started"}, {"me", node}, {"host", host}, {"pid", 100}, {"label", "x"}});
  }
  void joined(const std::string& observer, const std::string& node) {
    line(observer, {{"ev", "nodeJoined"}, {"node", node}, {"host", "H"}, {"pid", 1}});
  }
  void left(const std::string& observer, const std::string& node) {
    line(observer,
         {{"ev", "nodeLeft"}, {"node", node}, {"host", "H"}, {"reason", "exited"}, {"detail", 9}});
  }
  void host_joined(const std::string& observer, const std::string& host) {
    line(observer, {{"ev", "hostJoined"}, {"host", host}, {"address", "10.77.0.1:1"}});
  }
  void host_left(const std::string& observer, const std::string& host) {
    line(observer, {{"ev", "hostLeft"}, {"host", host}, {"reason", "link_lost"}});
  }
  void send(const std::string& from, const std::string& to, std::uint64_t seq) {
    line(from, {{"ev", "send"}, {"to", to}, {"seq", seq}});
  }
  void recv(const std::string& to, const std::string& from, std::uint64_t seq) {
    line(to, {{"ev", "recv"}, {"from", from}, {"seq", seq}});
  }
  void request(const std::string& from, const std::string& to, std::uint64_t id) {
    line(from, {{"ev", "request"}, {"id", id}, {"to", to}});
  }
  void request_end(const std::string& from, const std::string& to, std::uint64_t id,
                   const std::string& outcome = "reply", bool echo = true) {
    line(from,
         {{"ev", "request_end"}, {"id", id}, {"to", to}, {"outcome", outcome}, {"echo", echo}});
  }
  void serve(const std::string& at, const std::string& from, std::uint64_t id) {
    line(at, {{"ev", "serve"}, {"from", from}, {"id", id}});
  }
  void quiesce(const std::string& node, std::vector<std::string> nodes, json sent,
               std::vector<std::string> hosts = {"H"}) {
    line(node, {{"ev", "quiesce"}, {"nodes", nodes}, {"hosts", hosts}, {"sent", sent}});
  }
  void idle(const std::string& node) { line(node, {{"ev", "idle"}}); }
  void group_joined(const std::string& observer, const std::string& group,
                    const std::string& node) {
    line(observer, {{"ev", "groupJoined"}, {"group", group}, {"node", node}});
  }
  void group_left(const std::string& observer, const std::string& group, const std::string& node) {
    line(observer, {{"ev", "groupLeft"}, {"group", group}, {"node", node}});
  }
  void publish(const std::string& from, const std::string& group, std::uint64_t seq) {
    line(from, {{"ev", "publish"}, {"group", group}, {"seq", seq}});
  }
  void deliver(const std::string& to, const std::string& from, const std::string& group,
               std::uint64_t seq) {
    line(to, {{"ev", "deliver"}, {"from", from}, {"group", group}, {"seq", seq}});
  }
  // A send handled that its sender made after `pubs` publishes.
  void recv_after(const std::string& to, const std::string& from, std::uint64_t seq,
                  std::uint64_t pubs) {
    line(to, {{"ev", "recv"}, {"from", from}, {"seq", seq}, {"pubs", pubs}});
  }

  // pair(), and both nodes in group "g", each seeing itself and the other join it.
  void grouped_pair() {
    pair();
    for (const auto& [obs, other] : {std::pair{"A", "B"}, std::pair{"B", "A"}}) {
      group_joined(obs, "g", obs);
      group_joined(obs, "g", other);
    }
  }

  // Two nodes A and B of one host that know each other.
  void pair() {
    boot("A");
    boot("B");
    host_joined("A", "H");
    host_joined("B", "H");
    joined("A", "B");
    joined("B", "A");
  }

  const log_set& logs() const { return logs_; }
  std::vector<std::string> violations(bool strict = true) const {
    return check(logs_, {.require_drained = strict, .require_same_views = strict});
  }

 private:
  log_set logs_;
  double t_ = 1000;
};

// True when some violation mentions `needle`.
bool mentions(const std::vector<std::string>& violations, const std::string& needle) {
  for (const auto& v : violations)
    if (v.find(needle) != std::string::npos) return true;
  return false;
}

std::string all(const std::vector<std::string>& violations) {
  std::string out;
  for (const auto& v : violations) out += v + "\n";
  return out;
}

TEST(event_log_checker, a_clean_history_has_no_violation) {
  history h;
  h.pair();
  for (std::uint64_t s = 1; s <= 3; ++s) {
    h.send("A", "B", s);
    h.recv("B", "A", s);
  }
  h.request("A", "B", 1);
  h.serve("B", "A", 1);
  h.request_end("A", "B", 1);
  h.request("B", "A", 1);
  h.request_end("B", "A", 1, "timeout", false);
  h.quiesce("A", {"B"}, {{"B", 3}});
  h.quiesce("B", {"A"}, json::object());
  h.idle("A");
  h.idle("B");
  const auto v = h.violations();
  EXPECT_TRUE(v.empty()) << all(v);
  EXPECT_TRUE(undelivered(h.logs()).empty());
}

TEST(event_log_checker, a_clean_group_history_has_no_violation) {
  history h;
  h.grouped_pair();
  // A publishes, sends, publishes: B handles them in that order; then A leaves the cluster (its
  // group first), comes back, and its group again from B's snapshot.
  h.publish("A", "g", 1);
  h.send("A", "B", 1);
  h.publish("A", "g", 2);
  h.deliver("B", "A", "g", 1);
  h.recv_after("B", "A", 1, 1);
  h.deliver("B", "A", "g", 2);
  h.group_left("B", "g", "A");
  h.left("B", "A");
  h.joined("B", "A");
  h.group_joined("B", "g", "A");
  h.deliver("B", "A", "g", 7);
  h.recv_after("B", "A", 4, 7);
  const auto v = h.violations(false);
  EXPECT_TRUE(v.empty()) << all(v);
}

TEST(event_log_checker, a_second_groupJoined_without_a_groupLeft_is_caught) {
  history h;
  h.grouped_pair();
  h.group_joined("B", "g", "A");
  EXPECT_TRUE(mentions(h.violations(false), "twice without a groupLeft"))
      << all(h.violations(false));
}

TEST(event_log_checker, a_groupLeft_without_a_groupJoined_is_caught) {
  history h;
  h.grouped_pair();
  h.group_left("B", "h", "A");
  EXPECT_TRUE(mentions(h.violations(false), "without a groupJoined before"))
      << all(h.violations(false));
}

TEST(event_log_checker, a_groupJoined_of_a_node_not_joined_is_caught) {
  history h;
  h.pair();
  h.left("B", "A");
  h.group_joined("B", "g", "A");
  EXPECT_TRUE(mentions(h.violations(false), "while the node was not joined"))
      << all(h.violations(false));
}

TEST(event_log_checker, a_nodeLeft_before_the_nodes_groupLeft_is_caught) {
  history h;
  h.grouped_pair();
  h.left("B", "A");
  h.group_left("B", "g", "A");
  const auto v = h.violations(false);
  EXPECT_TRUE(mentions(v, "still in group g")) << all(v);
  EXPECT_TRUE(mentions(v, "without a groupJoined before")) << all(v);
}

TEST(event_log_checker, a_publish_handled_before_the_publishers_groupJoined_is_caught) {
  history h;
  h.pair();
  h.deliver("B", "A", "g", 1);
  EXPECT_TRUE(mentions(h.violations(false), "while it was not in the group"))
      << all(h.violations(false));
}

TEST(event_log_checker, a_publish_handled_after_the_publishers_groupLeft_is_caught) {
  history h;
  h.grouped_pair();
  h.deliver("B", "A", "g", 1);
  h.group_left("B", "g", "A");
  h.deliver("B", "A", "g", 2);
  EXPECT_TRUE(mentions(h.violations(false), "while it was not in the group"))
      << all(h.violations(false));
}

TEST(event_log_checker, a_duplicate_or_reordered_publish_is_caught) {
  history h;
  h.grouped_pair();
  h.deliver("B", "A", "g", 2);
  h.deliver("B", "A", "g", 2);
  h.deliver("B", "A", "g", 1);
  const auto v = h.violations(false);
  EXPECT_TRUE(mentions(v, "(duplicate)")) << all(v);
  EXPECT_TRUE(mentions(v, "(reordered)")) << all(v);
}

TEST(event_log_checker, a_publish_overtaken_by_a_later_send_is_caught) {
  history h;
  h.grouped_pair();
  h.recv_after("B", "A", 1, 3);  // sent after publish 3
  h.deliver("B", "A", "g", 3);
  EXPECT_TRUE(mentions(h.violations(false), "publishes (overtaken)")) << all(h.violations(false));
}

TEST(event_log_checker, a_send_overtaken_by_a_later_publish_is_caught) {
  history h;
  h.grouped_pair();
  h.deliver("B", "A", "g", 2);
  h.recv_after("B", "A", 1, 1);  // sent after publish 1 only, before publish 2
  EXPECT_TRUE(mentions(h.violations(false), "publish 2 (overtaken)")) << all(h.violations(false));
}

TEST(event_log_checker, a_refused_join_is_caught) {
  history h;
  h.pair();
  h.line("A", {{"ev", "join_fail"}, {"group", "room0"}, {"error", "overloaded"}});
  EXPECT_TRUE(mentions(h.violations(false), "could not join group room0"))
      << all(h.violations(false));
}

TEST(event_log_checker, a_gap_explained_by_a_leave_and_return_is_no_violation) {
  history h;
  h.pair();
  h.recv("B", "A", 1);
  h.left("B", "A");
  h.joined("B", "A");
  h.recv("B", "A", 5);
  EXPECT_TRUE(h.violations(false).empty()) << all(h.violations(false));
}

TEST(event_log_checker, a_duplicate_is_caught) {
  history h;
  h.pair();
  h.recv("B", "A", 1);
  h.recv("B", "A", 1);
  EXPECT_TRUE(mentions(h.violations(false), "(duplicate)")) << all(h.violations(false));
}

TEST(event_log_checker, a_reorder_is_caught) {
  history h;
  h.pair();
  h.recv("B", "A", 2);
  h.recv("B", "A", 1);
  EXPECT_TRUE(mentions(h.violations(false), "(reordered)")) << all(h.violations(false));
}

TEST(event_log_checker, a_gap_without_a_leave_is_caught) {
  history h;
  h.pair();
  h.recv("B", "A", 1);
  h.recv("B", "A", 3);
  EXPECT_TRUE(mentions(h.violations(false), "lost seqs 2..2")) << all(h.violations(false));
}

TEST(event_log_checker, a_first_message_that_is_not_the_first_sent_is_caught) {
  history h;
  h.pair();
  h.recv("B", "A", 4);
  EXPECT_TRUE(mentions(h.violations(false), "lost seqs 1..3")) << all(h.violations(false));
}

TEST(event_log_checker, a_message_before_nodeJoined_is_caught) {
  history h;
  h.boot("A");
  h.boot("B");
  h.recv("B", "A", 1);
  h.joined("B", "A");
  EXPECT_TRUE(mentions(h.violations(false), "before its nodeJoined")) << all(h.violations(false));
}

TEST(event_log_checker, a_message_after_nodeLeft_is_caught) {
  history h;
  h.pair();
  h.recv("B", "A", 1);
  h.left("B", "A");
  h.recv("B", "A", 2);
  EXPECT_TRUE(mentions(h.violations(false), "after its nodeLeft")) << all(h.violations(false));
}

TEST(event_log_checker, a_request_served_from_an_unknown_node_is_caught) {
  history h;
  h.boot("A");
  h.boot("B");
  h.serve("B", "A", 1);
  EXPECT_TRUE(mentions(h.violations(false), "served request 1")) << all(h.violations(false));
}

TEST(event_log_checker, a_second_nodeJoined_without_a_leave_is_caught) {
  history h;
  h.pair();
  h.joined("B", "A");
  EXPECT_TRUE(mentions(h.violations(false), "twice without a nodeLeft"))
      << all(h.violations(false));
}

TEST(event_log_checker, a_nodeLeft_without_a_join_is_caught) {
  history h;
  h.pair();
  h.left("B", "A");
  h.left("B", "A");
  EXPECT_TRUE(mentions(h.violations(false), "without a nodeJoined before"))
      << all(h.violations(false));
}

TEST(event_log_checker, host_events_must_alternate) {
  history h;
  h.pair();
  h.host_joined("A", "H");
  h.host_left("B", "G");
  const auto v = h.violations(false);
  EXPECT_TRUE(mentions(v, "hostJoined(H) twice")) << all(v);
  EXPECT_TRUE(mentions(v, "hostLeft(G) without a hostJoined")) << all(v);
}

TEST(event_log_checker, a_request_ended_twice_is_caught) {
  history h;
  h.pair();
  h.request("A", "B", 7);
  h.request_end("A", "B", 7);
  h.request_end("A", "B", 7, "timeout", false);
  EXPECT_TRUE(mentions(h.violations(false), "more than once")) << all(h.violations(false));
}

TEST(event_log_checker, a_request_completed_with_another_reply_is_caught) {
  history h;
  h.pair();
  h.request("A", "B", 7);
  h.request_end("A", "B", 7, "reply", false);
  EXPECT_TRUE(mentions(h.violations(false), "not its own")) << all(h.violations(false));
}

TEST(event_log_checker, a_request_that_never_began_is_caught) {
  history h;
  h.pair();
  h.request_end("A", "B", 3);
  EXPECT_TRUE(mentions(h.violations(false), "never began")) << all(h.violations(false));
}

TEST(event_log_checker, an_idle_node_with_a_request_never_ended_is_caught) {
  history h;
  h.pair();
  h.request("A", "B", 2);
  h.quiesce("A", {"B"}, json::object());
  h.idle("A");
  EXPECT_TRUE(mentions(h.violations(false), "never ended")) << all(h.violations(false));
}

TEST(event_log_checker, a_request_still_pending_at_the_targets_leave_is_caught) {
  history h;
  h.pair();
  h.request("A", "B", 4);
  h.left("A", "B");
  h.request_end("A", "B", 4, "node_left", false);
  EXPECT_TRUE(mentions(h.violations(false), "requests to it still pending"))
      << all(h.violations(false));
}

TEST(event_log_checker, a_view_at_quiesce_that_disagrees_with_the_events_is_caught) {
  history h;
  h.pair();
  h.quiesce("A", {}, json::object());
  EXPECT_TRUE(mentions(h.violations(false), "node.nodes() lists 0")) << all(h.violations(false));
}

TEST(event_log_checker, a_message_never_delivered_is_caught_once_drained_is_required) {
  history h;
  h.pair();
  h.send("A", "B", 1);
  h.send("A", "B", 2);
  h.recv("B", "A", 1);
  h.quiesce("A", {"B"}, {{"B", 2}});
  h.quiesce("B", {"A"}, json::object());
  EXPECT_EQ(undelivered(h.logs()).size(), 1u);
  EXPECT_TRUE(h.violations(false).empty()) << all(h.violations(false));
  EXPECT_TRUE(mentions(h.violations(true), "undelivered: ")) << all(h.violations(true));
  // A nodeLeft after the last receive explains the tail.
  h.left("B", "A");
  EXPECT_TRUE(undelivered(h.logs()).empty());
}

TEST(event_log_checker, different_final_views_are_caught) {
  history h;
  h.pair();
  h.boot("C");
  h.joined("A", "C");
  h.joined("C", "A");
  h.quiesce("A", {"B", "C"}, json::object());
  h.quiesce("B", {"A"}, json::object());
  h.quiesce("C", {"A"}, json::object());
  EXPECT_TRUE(mentions(h.violations(true), "views at quiesce differ")) << all(h.violations(true));
}

TEST(event_log_checker, an_unparseable_line_is_caught) {
  history h;
  h.pair();
  log_set logs = h.logs();
  logs.add_line("A.jsonl", "{\"t_ms\": 1, \"ev\": ");
  EXPECT_TRUE(mentions(check(logs), "not JSON")) << all(check(logs));
}

TEST(event_log_checker, a_directory_is_read_incrementally_line_by_line) {
  char pattern[] = "/tmp/gxcheckXXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::filesystem::path dir = pattern;
  {
    std::ofstream out(dir / "A.jsonl");
    out << R"({"t_ms":1,"ev":"boot","me":"A","pid":1,"label":"a"})"
        << "\n"
        << R"({"t_ms":2,"ev":"nodeJoined","node":"B","host":"H","pid":2})"
        << "\n"
        << R"({"t_ms":3,"ev":"recv","fr)";
  }
  log_set logs(dir);
  logs.refresh();
  ASSERT_EQ(logs.nodes().size(), 1u);
  EXPECT_EQ(logs.nodes()[0].records.size(), 2u);
  EXPECT_EQ(logs.nodes()[0].nodes_now.size(), 1u);
  {
    std::ofstream out(dir / "A.jsonl", std::ios::app);
    out << R"(om":"B","seq":1})"
        << "\n";
  }
  logs.refresh();
  ASSERT_EQ(logs.nodes()[0].records.size(), 3u);
  EXPECT_EQ(logs.nodes()[0].records[2].what, kind::recv);
  EXPECT_EQ(logs.nodes()[0].records[2].number, 1u);
  EXPECT_TRUE(check(logs).empty()) << all(check(logs));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace galaxies::test::fault
