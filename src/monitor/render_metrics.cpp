#include "monitor/render_metrics.hpp"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "monitor/metrics_text.hpp"

namespace galaxies::monitor {
namespace {

using json = nlohmann::json;

// A count or an id: the document stores a signed type (pid_t) as a signed number, so a
// non-negative one counts as well as an unsigned one; anything else is 0.
std::uint64_t count(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  if (it->is_number_integer())
    return static_cast<std::uint64_t>(std::max<std::int64_t>(0, it->get<std::int64_t>()));
  return 0;
}

double number(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

std::string text(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool flag(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

const json& object(const json& j, const char* key) {
  static const json empty = json::object();
  const auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : empty;
}

const json& array(const json& j, const char* key) {
  static const json empty = json::array();
  const auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : empty;
}

// The router's counters, one family each: name, key in "counters", help.
struct counter_row {
  const char* name;
  const char* key;
  const char* help;
};
constexpr counter_row router_counters[] = {
    {"galaxies_forwarded_frames_total", "forwarded", "Message frames this master forwarded."},
    {"galaxies_dropped_frames_total", "dropped",
     "Frames to a node that was leaving (its nodeLeft tells the senders); zero in a healthy "
     "cluster."},
    {"galaxies_refused_requests_total", "refused_requests",
     "Requests this master answered itself (no_such_node, node_left, overloaded)."},
    {"galaxies_unmatched_replies_total", "unmatched_replies",
     "Replies to no request forwarded here (late or forged), dropped."},
    {"galaxies_slow_consumers_total", "slow_consumers",
     "Connections closed because they could not keep up with their traffic."},
    {"galaxies_held_back_total", "held_back",
     "Times a sender's connection stopped being read until its receiver drained."},
    {"galaxies_refused_connections_total", "refused_connections",
     "Connections closed at once: limits, address policy, another user's local client."},
    {"galaxies_silent_workers_killed_total", "silent_workers_killed",
     "Workers killed for missing their heartbeats."},
    {"galaxies_silent_peers_lost_total", "silent_peers_lost",
     "Host links closed for missing heartbeats."},
    {"galaxies_workers_started_total", "workers_adopted",
     "Worker processes started by this master, respawns included."},
};

void info(metrics_text& m, const json& s) {
  m.family("galaxies_host_info", "gauge", "This master: its host id, cluster, address, hostname.");
  m.sample(std::uint64_t{1}, {{"host", text(s, "host")},
                              {"cluster", text(s, "cluster")},
                              {"address", text(s, "address")},
                              {"hostname", text(s, "hostname")}});
}

// One family per figure, a sample per link: a family's samples must stay together.
void links(metrics_text& m, const json& s) {
  const json& peers = array(s, "peers");
  const auto per_link = [&](const char* name, const char* type, const char* help, auto value,
                            bool linked_only) {
    m.family(name, type, help);
    for (const json& p : peers) {
      if (linked_only && text(p, "state") != "linked") continue;
      const std::string host = text(p, "host");
      const std::string address = text(p, "address");
      m.sample(std::vector<label>{{"peer", host}, {"address", address}}, value(p));
    }
  };
  m.family("galaxies_link_state", "gauge",
           "Each host this master wants a link to, 1 for the state it is in.");
  for (const json& p : peers)
    m.sample(
        std::uint64_t{1},
        {{"peer", text(p, "host")}, {"address", text(p, "address")}, {"state", text(p, "state")}});
  const auto c = [](const char* key) {
    return [key](const json& p) { return double(count(p, key)); };
  };
  per_link("galaxies_link_received_frames_total", "counter",
           "Frames read from the host link, heartbeats included.", c("frames_in"), true);
  per_link("galaxies_link_sent_frames_total", "counter",
           "Frames this master routed onto the host link (messages, requests, replies, grants).",
           c("frames_out"), true);
  per_link("galaxies_link_received_bytes_total", "counter", "Bytes read from the host link.",
           c("bytes_in"), true);
  per_link("galaxies_link_sent_bytes_total", "counter", "Bytes written to the host link.",
           c("bytes_out"), true);
  per_link("galaxies_link_queued_bytes", "gauge",
           "Bytes queued for the host link, not yet written.", c("queued_bytes"), true);
  per_link("galaxies_link_routed_bytes_total", "counter",
           "Bytes of the frames this master routed onto the host link.", c("bytes_queued"), true);
  per_link("galaxies_link_copied_bytes_total", "counter",
           "Of those, bytes copied into the link's queue (the rest were written from where they "
           "were read).",
           c("bytes_copied"), true);
  per_link("galaxies_link_flow_stalls_total", "counter",
           "Times the link stopped being read because a receiver behind it had a full queue.",
           c("stalls"), true);
  per_link("galaxies_link_nodes", "gauge", "Nodes the peer host announced.", c("nodes"), true);
  per_link("galaxies_link_reconnects_total", "counter",
           "Links made to the peer after the first one.", c("reconnects"), false);
  // Only links that have a figure: a missing sample says "not measured yet", a zero would lie.
  const auto per_measured_link = [&](const char* name, const char* help, const char* key) {
    m.family(name, "gauge", help);
    for (const json& p : peers)
      if (text(p, "state") == "linked" && p.contains(key))
        m.sample(std::vector<label>{{"peer", text(p, "host")}, {"address", text(p, "address")}},
                 number(p, key) / 1e6);
  };
  per_measured_link("galaxies_link_rtt_seconds",
                    "Round trip of the link's probes (network and the peer's loop), smoothed.",
                    "rtt_us");
  per_measured_link("galaxies_link_tcp_rtt_seconds",
                    "The kernel's smoothed round-trip time of the link's TCP connection.",
                    "tcp_rtt_us");
  per_link(
      "galaxies_link_peer_lateness_seconds", "gauge",
      "How late the peer's own loop said it runs (its heartbeats, decayed).",
      [](const json& p) { return number(p, "reported_lateness_ms") / 1e3; }, true);
}

void workers(metrics_text& m, const json& s) {
  const json& slots = array(s, "workers");
  // A worker's traffic is its channel's, found by pid among the local nodes.
  std::map<std::int64_t, const json*> node_by_pid;
  for (const json& n : array(s, "nodes"))
    if (n.contains("pid") && n["pid"].is_number()) node_by_pid[n["pid"].get<std::int64_t>()] = &n;
  static constexpr const char* states[] = {"running", "restarting", "given_up", "stopping",
                                           "stopped"};
  m.family("galaxies_worker_state", "gauge", "Each worker slot, 1 for the state it is in.");
  for (const json& w : slots) {
    const std::string slot = std::to_string(count(w, "slot"));
    for (const char* state : states)
      m.sample(std::uint64_t{text(w, "state") == state ? 1u : 0u},
               {{"slot", slot}, {"state", state}});
  }
  m.family("galaxies_worker_pid", "gauge", "The process id running in each slot (0: none).");
  for (const json& w : slots)
    m.sample(count(w, "pid"), {{"slot", std::to_string(count(w, "slot"))}});
  m.family("galaxies_worker_restarts_total", "counter",
           "Processes started in each slot after its first.");
  for (const json& w : slots)
    m.sample(count(w, "restarts"), {{"slot", std::to_string(count(w, "slot"))}});
  const auto per_worker = [&](const char* name, const char* type, const char* help,
                              const char* key) {
    m.family(name, type, help);
    for (const json& w : slots) {
      const auto it = node_by_pid.find(static_cast<std::int64_t>(count(w, "pid")));
      if (count(w, "pid") == 0 || it == node_by_pid.end()) continue;
      m.sample(count(*it->second, key), {{"slot", std::to_string(count(w, "slot"))}});
    }
  };
  per_worker("galaxies_worker_received_frames_total", "counter",
             "Frames read from the worker's channel (this process's), heartbeats included.",
             "frames_in");
  per_worker("galaxies_worker_sent_frames_total", "counter",
             "Frames this master routed to the worker (this process).", "frames_out");
  per_worker("galaxies_worker_received_bytes_total", "counter",
             "Bytes read from the worker's channel (this process).", "bytes_in");
  per_worker("galaxies_worker_sent_bytes_total", "counter",
             "Bytes written to the worker's channel (this process).", "bytes_out");
  per_worker("galaxies_worker_queued_bytes", "gauge",
             "Bytes queued for the worker, not yet written.", "queued_bytes");
  per_worker("galaxies_worker_routed_bytes_total", "counter",
             "Bytes of the frames this master routed to the worker (this process).",
             "bytes_queued");
  per_worker("galaxies_worker_copied_bytes_total", "counter",
             "Of those, bytes copied into the channel's queue (the rest were written from where "
             "they were read).",
             "bytes_copied");
  std::uint64_t attached = 0;
  for (const json& n : array(s, "nodes")) attached += text(n, "kind") == "attached" ? 1 : 0;
  m.family("galaxies_attached_nodes", "gauge", "External processes attached as nodes.");
  m.sample(attached);
}

void counters(metrics_text& m, const json& s) {
  const json& c = object(s, "counters");
  for (const auto& row : router_counters) {
    m.family(row.name, "counter", row.help);
    m.sample(count(c, row.key));
  }
  m.family("galaxies_requests_in_flight", "gauge", "Requests forwarded and not yet answered.");
  m.sample(count(c, "requests_in_flight"));
  m.family("galaxies_queued_bytes", "gauge", "Bytes queued on all of this master's connections.");
  m.sample(count(s, "queued_bytes"));
  m.family("galaxies_connections", "gauge", "Connections open: nodes, observers, host links.");
  m.sample(count(s, "connections"));
  // Totals only: a group's name is the application's, and one label per room would grow the
  // series without bound. /status.json names the largest.
  const json& g = object(s, "groups");
  m.family("galaxies_groups", "gauge", "Groups with at least one member, cluster-wide.");
  m.sample(count(g, "count"));
  m.family("galaxies_group_memberships", "gauge",
           "Memberships of nodes in groups, cluster-wide (a node in 3 groups counts 3).");
  m.sample(count(g, "memberships"));

  for (const auto& [name, key, help] :
       {std::tuple{"galaxies_handshake_refusals_sent_total", "refusals_sent",
                   "Handshakes this master refused, by code."},
        std::tuple{"galaxies_handshake_refusals_received_total", "refusals_received",
                   "Refusals this master's dials met, by code."}}) {
    m.family(name, "counter", help);
    for (const auto& [code, n] : object(c, key).items())
      if (n.is_number_unsigned()) m.sample(n.get<std::uint64_t>(), {{"code", code}});
  }
  m.family("galaxies_connections_closed_total", "counter",
           "Connections closed, by kind (host, node, client) and reason.");
  for (const auto& [kind, reasons] : object(c, "closed").items())
    if (reasons.is_object())
      for (const auto& [reason, n] : reasons.items())
        if (n.is_number_unsigned())
          m.sample(n.get<std::uint64_t>(), {{"kind", kind}, {"reason", reason}});

  const json& h = object(s, "local_health");
  m.family("galaxies_loop_late_ticks_total", "counter",
           "Heartbeat timer wake-ups of this master that ran late (a busy machine).");
  m.sample(count(h, "late_ticks"));
  m.family("galaxies_loop_lateness_seconds", "gauge",
           "How late this master's loop runs now, beyond the normal (decayed).");
  m.sample(number(h, "excess_lateness_ms") / 1e3);
  m.family("galaxies_lossy_silences_forgiven_total", "counter",
           "Host-link silences given more time because the path was losing packets and the "
           "peer's kernel still answered.");
  m.sample(count(h, "loss_stretched"));
}

void registry(metrics_text& m, const json& s) {
  const json& r = object(s, "registry_health");
  m.family("galaxies_registry_up", "gauge",
           "1 while the registry stores and refreshes this host's row.");
  m.sample(std::uint64_t{flag(r, "healthy") ? 1u : 0u});
  m.family("galaxies_registry_refreshes_total", "counter",
           "Refreshes of this host's row, by result.");
  m.sample(count(r, "refreshes_ok"), {{"result", "ok"}});
  m.sample(count(r, "refreshes_failed"), {{"result", "failed"}});
  m.family("galaxies_registry_refresh_duration_seconds", "summary",
           "Time the registry took for each refresh of this host's row.");
  m.sample(number(r, "refresh_total_us") / 1e6, {}, "_sum");
  m.sample(count(r, "refreshes_ok") + count(r, "refreshes_failed"), {}, "_count");
  m.family("galaxies_registry_last_refresh_seconds", "gauge",
           "Time the registry took for the last refresh of this host's row.");
  m.sample(number(r, "last_refresh_us") / 1e6);
}

void process(metrics_text& m, const json& s) {
  const json& p = object(s, "process");
  m.family("process_resident_memory_bytes", "gauge", "Resident memory of this master.");
  m.sample(count(p, "rss_bytes"));
  m.family("process_open_fds", "gauge", "File descriptors this master has open.");
  m.sample(count(p, "open_fds"));
  m.family("process_max_fds", "gauge", "This master's limit of open file descriptors.");
  m.sample(count(p, "max_fds"));
  m.family("process_cpu_seconds_total", "counter", "CPU time this master used, user and system.");
  m.sample(number(p, "cpu_seconds"));
  m.family("process_start_time_seconds", "gauge", "When this master started, in Unix time.");
  m.sample(number(p, "start_time_seconds"));
  m.family(
      "galaxies_log_lines_dropped_total", "counter",
      "Log lines this master dropped because stderr could not take them as fast as they came.");
  m.sample(count(p, "log_lines_dropped"));
}

}  // namespace

std::string render_metrics(const json& status) {
  metrics_text m;
  info(m, status);
  links(m, status);
  workers(m, status);
  counters(m, status);
  registry(m, status);
  process(m, status);
  return m.text();
}

}  // namespace galaxies::monitor
