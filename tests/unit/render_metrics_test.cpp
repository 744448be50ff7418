// A master's /metrics from a hand-written status document shaped as router::status() and
// master::extend_status() build it: the families and values an operator's dashboards rely on,
// read back sample by sample (not as one golden page, so that adding a family breaks nothing).
#include "monitor/render_metrics.hpp"

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "support/metrics_samples.hpp"

namespace galaxies::monitor {
namespace {

using json = nlohmann::json;
using test::metrics_page;

// Built from C++ values, not parsed from text: nlohmann's parser makes every non-negative
// integer unsigned, which would hide a signed field (a pid_t) the real document holds.
json traffic(std::uint64_t frames_in, std::uint64_t frames_out, std::uint64_t bytes_in,
             std::uint64_t bytes_out, std::uint64_t queued, std::uint64_t stalls) {
  return {{"frames_in", frames_in}, {"frames_out", frames_out}, {"bytes_in", bytes_in},
          {"bytes_out", bytes_out}, {"queued_bytes", queued},   {"stalls", stalls}};
}

json node(const char* id, pid_t pid, const char* kind, json t) {
  t["node"] = id;
  t["pid"] = pid;
  t["kind"] = kind;
  return t;
}

json status_document() {
  json linked = traffic(40, 9, 4000, 900, 16, 1);
  linked.update({{"bytes_queued", std::uint64_t{880}}, {"bytes_copied", std::uint64_t{80}}});
  json worker = traffic(12, 5, 300, 200, 0, 0);
  worker.update({{"bytes_queued", std::uint64_t{190}}, {"bytes_copied", std::uint64_t{0}}});
  linked.update({{"host", "host-b"},
                 {"address", "127.0.0.1:7001"},
                 {"hostname", "b"},
                 {"state", "linked"},
                 {"nodes", std::size_t{2}},
                 {"reported_lateness_ms", std::int64_t{3}},
                 {"rtt_us", std::int64_t{250}},
                 {"reconnects", std::uint64_t{1}}});
  return {
      {"host", "host-a"},
      {"cluster", "c1"},
      {"address", "127.0.0.1:7000"},
      {"hostname", "box"},
      {"pid", pid_t{100}},
      {"nodes",
       {node("n1", 101, "worker", worker),
        node("n9", 109, "attached", traffic(1, 1, 10, 10, 0, 0))}},
      {"peers",
       {linked,
        {{"host", "host-c"},
         {"address", "127.0.0.1:7002"},
         {"state", "dialling"},
         {"reconnects", std::uint64_t{0}}}}},
      {"queued_bytes", std::size_t{64}},
      {"connections", std::size_t{5}},
      {"groups",
       {{"count", std::size_t{2}},
        {"memberships", std::size_t{7}},
        {"largest", {{{"group", "room-1"}, {"members", 5}, {"local", 2}}}}}},
      {"counters",
       {{"forwarded", std::numeric_limits<std::uint64_t>::max()},
        {"dropped", std::uint64_t{0}},
        {"refused_requests", std::uint64_t{2}},
        {"unmatched_replies", std::uint64_t{0}},
        {"slow_consumers", std::uint64_t{0}},
        {"held_back", std::uint64_t{3}},
        {"refused_connections", std::uint64_t{4}},
        {"silent_workers_killed", std::uint64_t{0}},
        {"silent_peers_lost", std::uint64_t{1}},
        {"workers_adopted", std::uint64_t{3}},
        {"requests_in_flight", std::size_t{1}},
        {"refusals_sent", {{"wrong_cluster", std::uint64_t{2}}}},
        {"refusals_received", {{"unauthorized", std::uint64_t{1}}}},
        {"closed",
         {{"host", {{"heartbeat_timeout", std::uint64_t{1}}}},
          {"node", {{"eof", std::uint64_t{2}}, {"overloaded", std::uint64_t{1}}}},
          {"client", json::object()}}}}},
      {"local_health",
       {{"late_ticks", std::uint64_t{4}},
        {"loss_stretched", std::uint64_t{2}},
        {"excess_lateness_ms", std::int64_t{1500}}}},
      // master::extend_status: slots with a signed pid, 0 for none.
      {"workers",
       {{{"slot", std::size_t{0}},
         {"pid", pid_t{101}},
         {"state", "running"},
         {"restarts", std::uint64_t{0}}},
        {{"slot", std::size_t{1}},
         {"pid", pid_t{0}},
         {"state", "restarting"},
         {"restarts", std::uint64_t{2}}}}},
      {"registry_health",
       {{"url", "file:/tmp/r"},
        {"healthy", true},
        {"refreshes_ok", std::uint64_t{5}},
        {"refreshes_failed", std::uint64_t{1}},
        {"refresh_total_us", std::uint64_t{6000}},
        {"last_refresh_us", std::uint64_t{800}}}},
      {"process",
       {{"rss_bytes", 1048576ull},
        {"open_fds", std::uint64_t{12}},
        {"max_fds", std::uint64_t{1024}},
        {"cpu_seconds", 0.5},
        {"start_time_seconds", 1700000000.25},
        {"log_lines_dropped", std::uint64_t{3}}}},
  };
}

metrics_page rendered(const json& status) {
  const auto page = test::parse_metrics(render_metrics(status));
  for (const auto& p : page.problems) ADD_FAILURE() << p;
  return page;
}

// The family a sample belongs to: its name, or without the suffix a summary adds.
std::string family_of(const metrics_page& page, const std::string& sample) {
  for (const char* suffix : {"_sum", "_count"})
    if (sample.ends_with(suffix)) {
      const auto base = sample.substr(0, sample.size() - std::string(suffix).size());
      if (page.types.contains(base)) return base;
    }
  return sample;
}

TEST(render_metrics, every_sample_has_its_family_declared) {
  const auto page = rendered(status_document());
  ASSERT_FALSE(page.samples.empty());
  for (const auto& s : page.samples) {
    const auto family = family_of(page, s.name);
    EXPECT_TRUE(page.types.contains(family)) << s.name << " has no TYPE";
    EXPECT_TRUE(page.help.contains(family)) << s.name << " has no HELP";
  }
  // Prometheus's naming rules, as promtool checks them: counters end in _total, nothing else does.
  for (const auto& [name, type] : page.types)
    EXPECT_EQ(name.ends_with("_total"), type == "counter") << name << " is a " << type;
}

TEST(render_metrics, host_and_links) {
  const auto page = rendered(status_document());
  EXPECT_EQ(page.value("galaxies_host_info", {{"host", "host-a"},
                                              {"cluster", "c1"},
                                              {"address", "127.0.0.1:7000"},
                                              {"hostname", "box"}}),
            1.0);
  EXPECT_EQ(page.find("galaxies_link_state").size(), 2u);
  EXPECT_EQ(page.value("galaxies_link_state",
                       {{"peer", "host-b"}, {"address", "127.0.0.1:7001"}, {"state", "linked"}}),
            1.0);
  EXPECT_EQ(page.value("galaxies_link_state", {{"peer", "host-c"}, {"state", "dialling"}}), 1.0);

  const std::map<std::string, std::string> b{{"peer", "host-b"}};
  EXPECT_EQ(page.value("galaxies_link_received_frames_total", b), 40.0);
  EXPECT_EQ(page.value("galaxies_link_sent_frames_total", b), 9.0);
  EXPECT_EQ(page.value("galaxies_link_received_bytes_total", b), 4000.0);
  EXPECT_EQ(page.value("galaxies_link_sent_bytes_total", b), 900.0);
  EXPECT_EQ(page.value("galaxies_link_queued_bytes", b), 16.0);
  EXPECT_EQ(page.value("galaxies_link_flow_stalls_total", b), 1.0);
  EXPECT_EQ(page.value("galaxies_link_routed_bytes_total", b), 880.0);
  EXPECT_EQ(page.value("galaxies_link_copied_bytes_total", b), 80.0);
  EXPECT_EQ(page.value("galaxies_link_nodes", b), 2.0);
  EXPECT_DOUBLE_EQ(page.value("galaxies_link_rtt_seconds", b).value_or(-1), 250e-6);
  EXPECT_DOUBLE_EQ(page.value("galaxies_link_peer_lateness_seconds", b).value_or(-1), 3e-3);
  // A link not made yet has no traffic, only its reconnects.
  EXPECT_TRUE(page.find("galaxies_link_received_frames_total", {{"peer", "host-c"}}).empty());
  EXPECT_TRUE(page.find("galaxies_link_rtt_seconds", {{"peer", "host-c"}}).empty());
  EXPECT_EQ(page.value("galaxies_link_reconnects_total", b), 1.0);
  EXPECT_EQ(page.value("galaxies_link_reconnects_total", {{"peer", "host-c"}}), 0.0);
}

TEST(render_metrics, worker_slots) {
  const auto page = rendered(status_document());
  EXPECT_EQ(page.find("galaxies_worker_state").size(), 10u);  // 2 slots x 5 states
  EXPECT_EQ(page.value("galaxies_worker_state", {{"slot", "0"}, {"state", "running"}}), 1.0);
  EXPECT_EQ(page.value("galaxies_worker_state", {{"slot", "0"}, {"state", "restarting"}}), 0.0);
  EXPECT_EQ(page.value("galaxies_worker_state", {{"slot", "1"}, {"state", "restarting"}}), 1.0);
  EXPECT_EQ(page.value("galaxies_worker_state", {{"slot", "1"}, {"state", "running"}}), 0.0);
  EXPECT_EQ(page.value("galaxies_worker_pid", {{"slot", "0"}}), 101.0);
  EXPECT_EQ(page.value("galaxies_worker_pid", {{"slot", "1"}}), 0.0);
  EXPECT_EQ(page.value("galaxies_worker_restarts_total", {{"slot", "1"}}), 2.0);
  // Slot 0's traffic is its node's (found by pid); slot 1 has no process, so no sample.
  EXPECT_EQ(page.value("galaxies_worker_received_frames_total", {{"slot", "0"}}), 12.0);
  EXPECT_EQ(page.value("galaxies_worker_sent_frames_total", {{"slot", "0"}}), 5.0);
  EXPECT_EQ(page.value("galaxies_worker_received_bytes_total", {{"slot", "0"}}), 300.0);
  EXPECT_EQ(page.value("galaxies_worker_sent_bytes_total", {{"slot", "0"}}), 200.0);
  EXPECT_EQ(page.value("galaxies_worker_queued_bytes", {{"slot", "0"}}), 0.0);
  EXPECT_EQ(page.value("galaxies_worker_routed_bytes_total", {{"slot", "0"}}), 190.0);
  EXPECT_EQ(page.value("galaxies_worker_copied_bytes_total", {{"slot", "0"}}), 0.0);
  EXPECT_TRUE(page.find("galaxies_worker_received_frames_total", {{"slot", "1"}}).empty());
  EXPECT_EQ(page.value("galaxies_attached_nodes"), 1.0);
}

TEST(render_metrics, counters_refusals_and_closes) {
  const auto doc = status_document();
  const auto page = rendered(doc);
  // Counted exactly, not through a double.
  const auto forwarded = page.find("galaxies_forwarded_frames_total");
  ASSERT_EQ(forwarded.size(), 1u);
  EXPECT_EQ(forwarded[0]->value_text, "18446744073709551615");
  EXPECT_EQ(page.value("galaxies_dropped_frames_total"), 0.0);
  EXPECT_EQ(page.value("galaxies_refused_requests_total"), 2.0);
  EXPECT_EQ(page.value("galaxies_held_back_total"), 3.0);
  EXPECT_EQ(page.value("galaxies_refused_connections_total"), 4.0);
  EXPECT_EQ(page.value("galaxies_silent_peers_lost_total"), 1.0);
  EXPECT_EQ(page.value("galaxies_workers_started_total"), 3.0);
  EXPECT_EQ(page.value("galaxies_requests_in_flight"), 1.0);
  EXPECT_EQ(page.value("galaxies_queued_bytes"), 64.0);
  EXPECT_EQ(page.value("galaxies_connections"), 5.0);
  EXPECT_EQ(page.value("galaxies_groups"), 2.0);
  EXPECT_EQ(page.value("galaxies_group_memberships"), 7.0);
  // No family labelled by group name: the application's names are unbounded.
  for (const auto& family : {"galaxies_groups", "galaxies_group_memberships"})
    EXPECT_EQ(page.find(family).size(), 1u);

  EXPECT_EQ(page.value("galaxies_handshake_refusals_sent_total", {{"code", "wrong_cluster"}}), 2.0);
  EXPECT_EQ(page.value("galaxies_handshake_refusals_received_total", {{"code", "unauthorized"}}),
            1.0);
  EXPECT_EQ(page.find("galaxies_connections_closed_total").size(), 3u);
  EXPECT_EQ(page.value("galaxies_connections_closed_total",
                       {{"kind", "host"}, {"reason", "heartbeat_timeout"}}),
            1.0);
  EXPECT_EQ(page.value("galaxies_connections_closed_total", {{"kind", "node"}, {"reason", "eof"}}),
            2.0);
  EXPECT_EQ(
      page.value("galaxies_connections_closed_total", {{"kind", "node"}, {"reason", "overloaded"}}),
      1.0);

  EXPECT_EQ(page.value("galaxies_loop_late_ticks_total"), 4.0);
  EXPECT_DOUBLE_EQ(page.value("galaxies_loop_lateness_seconds").value_or(-1), 1.5);
  EXPECT_EQ(page.value("galaxies_lossy_silences_forgiven_total"), 2.0);
}

TEST(render_metrics, registry_and_process) {
  const auto page = rendered(status_document());
  EXPECT_EQ(page.value("galaxies_registry_up"), 1.0);
  EXPECT_EQ(page.value("galaxies_registry_refreshes_total", {{"result", "ok"}}), 5.0);
  EXPECT_EQ(page.value("galaxies_registry_refreshes_total", {{"result", "failed"}}), 1.0);
  EXPECT_DOUBLE_EQ(page.value("galaxies_registry_refresh_duration_seconds_sum").value_or(-1),
                   0.006);
  EXPECT_EQ(page.value("galaxies_registry_refresh_duration_seconds_count"), 6.0);
  EXPECT_DOUBLE_EQ(page.value("galaxies_registry_last_refresh_seconds").value_or(-1), 0.0008);
  EXPECT_EQ(page.value("process_resident_memory_bytes"), 1048576.0);
  EXPECT_EQ(page.value("process_open_fds"), 12.0);
  EXPECT_EQ(page.value("process_max_fds"), 1024.0);
  EXPECT_DOUBLE_EQ(page.value("process_cpu_seconds_total").value_or(-1), 0.5);
  EXPECT_DOUBLE_EQ(page.value("process_start_time_seconds").value_or(-1), 1700000000.25);
  EXPECT_EQ(page.value("galaxies_log_lines_dropped_total"), 3.0);
}

TEST(render_metrics, a_document_missing_every_optional_field_still_renders) {
  std::string text;
  ASSERT_NO_THROW(text = render_metrics(json::object()));
  const auto page = rendered(json::object());
  EXPECT_EQ(page.value("galaxies_registry_up"), 0.0);
  EXPECT_EQ(page.value("galaxies_dropped_frames_total"), 0.0);
  EXPECT_TRUE(page.find("galaxies_link_state").empty());
  EXPECT_TRUE(page.find("galaxies_worker_state").empty());
}

TEST(render_metrics, fields_of_the_wrong_type_are_ignored_not_thrown) {
  const json odd{{"host", 7},
                 {"peers", "none"},
                 {"nodes", {{{"pid", "x"}}, 3}},
                 {"workers", {{{"slot", -1}, {"pid", -5}, {"state", 2}}}},
                 {"counters", {{"dropped", -3}, {"closed", {{"node", 1}}}, {"refusals_sent", 2}}},
                 {"registry_health", {{"healthy", "yes"}}},
                 {"process", json::array()}};
  ASSERT_NO_THROW(render_metrics(odd));
  const auto page = rendered(odd);
  EXPECT_EQ(page.value("galaxies_dropped_frames_total"), 0.0);
  EXPECT_EQ(page.value("galaxies_worker_pid", {{"slot", "0"}}), 0.0);
}

}  // namespace
}  // namespace galaxies::monitor
