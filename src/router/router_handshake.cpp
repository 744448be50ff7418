// Handshakes on the accepting side: hello, the cluster secret's challenge and proof, the checks
// that admit a host, a node or an observer, and refusals that tell strangers nothing.
#include <spdlog/spdlog.h>

#include "base/text.hpp"
#include "router/router.hpp"
#include "security/peer_auth.hpp"

namespace galaxies::router {
namespace {

std::span<const std::byte> binding_of(const std::optional<transport::stream::binding>& b) {
  return b ? std::span<const std::byte>(*b) : std::span<const std::byte>();
}

}  // namespace

void router::refuse(connection& c, wire::refuse_code code, const std::string& why) {
  // Losing the simultaneous-dial race is routine, not a problem worth a warning.
  const auto level =
      code == wire::refuse_code::duplicate_link ? spdlog::level::info : spdlog::level::warn;
  if (c.trusted)
    spdlog::log(level, "{}: refused: {}: {}", c.link->name(), wire::to_string(code), why);
  else
    log_stranger(level, c.link->name() + ": refused: " + wire::to_string(code) + ": " + why);
  handshake_over(c);
  ++counters_.refusals_sent[static_cast<std::size_t>(code) % counters_.refusals_sent.size()];
  // A stranger learns the code only: never our cluster name, UUID or anything configured.
  wire::append_refuse(c.link->outbound(), {code, c.trusted ? why : std::string()});
  c.link->close_after_flush(transport::close_reason::refused);
}

void router::on_hello(connection& c, const wire::frame_view& frame) {
  wire::hello h;
  if (auto ec = wire::decode_hello(frame, h))
    return refuse(c, wire::refuse_code::malformed, "malformed hello: " + ec.message());
  if (h.version != wire::protocol_version)
    return refuse(c, wire::refuse_code::bad_version,
                  "protocol version " + std::to_string(h.version) +
                      " not supported; this host speaks " + std::to_string(wire::protocol_version));

  const bool on_tcp = c.kind == connection_kind::inbound_tcp;
  const bool role_fits =
      on_tcp ? h.role == wire::role::host
             : (c.kind == connection_kind::worker
                    ? h.role == wire::role::worker
                    : h.role == wire::role::attached || h.role == wire::role::observer);
  if (!role_fits)
    return refuse(c, wire::refuse_code::wrong_role,
                  std::string("role '") + wire::to_string(h.role) + "' is not accepted here");
  if (on_tcp) return on_host_hello(c, frame, h);

  if (h.cluster != settings_.cluster)
    return refuse(c, wire::refuse_code::wrong_cluster,
                  "this host is in cluster '" + settings_.cluster + "', not '" + h.cluster + "'");
  if (shutting_down_) return refuse(c, wire::refuse_code::shutting_down, "this host is stopping");
  if (!h.target.is_nil() && h.target != settings_.self.value())
    return refuse(c, wire::refuse_code::wrong_target,
                  "this is host " + settings_.self.to_string() + ", not " + h.target.to_string());
  c.link->cancel_expiry();
  c.link->set_max_frame_size(std::min(h.max_frame.value_or(settings_.limits.max_frame_size),
                                      settings_.limits.max_frame_size));
  if (h.role == wire::role::observer) return accept_observer(c);
  if (!h.flow_window)
    return refuse(c, wire::refuse_code::malformed,
                  "a node must speak flow control (flow_window record, protocol.md §4.1)");
  accept_node(c, h);
}

std::string router::flow_mismatch(const std::optional<std::uint32_t>& theirs) const {
  if (theirs == settings_.limits.flow_window) return {};
  return "this host's flow_window is " + std::to_string(settings_.limits.flow_window) +
         ", the peer's " + (theirs ? std::to_string(*theirs) : std::string("missing")) +
         " (every host of a cluster needs the same)";
}

// A host's hello. With a secret, nothing is judged before the dialler has proved it: the checks
// that could tell a stranger something (cluster, target) wait for admit_host().
void router::on_host_hello(connection& c, const wire::frame_view& frame, const wire::hello& h) {
  c.hello = h;
  c.hello_frame.assign(frame.bytes.begin(), frame.bytes.end());
  if (!settings_.secret) {
    if (h.auth_nonce)
      return refuse(c, wire::refuse_code::unauthorized,
                    "the dialler holds a cluster secret, but this host has none (--secret-file)");
    return admit_host(c);
  }
  if (!h.auth_nonce)
    return refuse(c, wire::refuse_code::unauthorized,
                  "the dialler holds no cluster secret (--secret-file)");
  security::random_bytes(c.challenge);
  c.step = handshake_step::awaiting_proof;
  wire::append_auth_challenge(c.link->outbound(), c.challenge);
  c.link->flush();
}

void router::on_auth_proof(connection& c, const wire::frame_view& frame) {
  wire::auth_value proof;
  if (wire::decode_auth_value(frame, proof))
    return refuse(c, wire::refuse_code::malformed, "malformed auth_proof");
  const auto expected =
      security::dialler_proof(std::as_bytes(std::span(*settings_.secret)), c.hello_frame,
                              c.challenge, binding_of(c.link->stream().tls_binding()));
  if (!security::same_digest(expected, proof))
    return refuse(c, wire::refuse_code::unauthorized, "wrong proof of the cluster secret");
  c.authenticated = true;
  c.trusted = true;
  c.link->stop_throttling();
  admit_host(c);
}

// The dialler is who it says (secret) or as good as it gets (plain, loopback): judge its hello.
void router::admit_host(connection& c) {
  // Past the secret, or with none: from here on its lines are worth reading in full.
  c.link->stop_throttling();
  const wire::hello& h = c.hello;
  if (h.cluster != settings_.cluster)
    return refuse(c, wire::refuse_code::wrong_cluster,
                  "this host is in cluster '" + settings_.cluster + "', not '" + h.cluster + "'");
  if (shutting_down_) return refuse(c, wire::refuse_code::shutting_down, "this host is stopping");
  if (h.target != settings_.self.value())
    return refuse(c, wire::refuse_code::wrong_target,
                  "this is host " + settings_.self.to_string() + ", not " + h.target.to_string());
  const host_id p(h.sender);
  if (p == settings_.self || p.is_nil())
    return refuse(c, wire::refuse_code::malformed, "bad host identity");
  if (auto why = flow_mismatch(h.flow_window); !why.empty())
    return refuse(c, wire::refuse_code::wrong_cluster, why);
  c.link->cancel_expiry();
  c.link->set_max_frame_size(std::min(h.max_frame.value_or(settings_.limits.max_frame_size),
                                      settings_.limits.max_frame_size));
  c.peer = p;
  c.peer_address = h.listen;
  c.peer_hostname = h.hostname;
  c.peer_pid = static_cast<pid_t>(h.pid);
  c.heartbeat_ms = h.heartbeat_ms;
  c.lateness_record = h.lateness.value_or(0);
  c.peer_probes = h.probes.value_or(0) != 0;
  c.dialled_by_us = false;
  c.link->set_name("inbound host link from " + c.remote + " (host " + short_id(p.value()) + ")");
  accept_peer(c);
}

wire::welcome router::make_welcome() const {
  wire::welcome w;
  w.host = settings_.self;
  describe_self(w);
  return w;
}

// With a secret, the welcome proves us in turn: an HMAC over the dialler's hello, our challenge,
// the TLS session and this welcome itself, written over the zeros of its last record.
void router::send_host_welcome(connection& c) {
  wire::welcome w = make_welcome();
  if (c.authenticated) w.auth_proof.emplace();
  auto& out = c.link->outbound();
  const std::size_t start = out.size();
  wire::append_welcome(out, w);
  if (!c.authenticated) return;
  const std::span<std::byte> frame(out.data() + start, out.size() - start);
  const auto proof =
      security::acceptor_proof(std::as_bytes(std::span(*settings_.secret)), c.hello_frame,
                               c.challenge, binding_of(c.link->stream().tls_binding()), frame);
  std::copy(proof.begin(), proof.end(), frame.end() - wire::welcome_proof_size);
}

void router::enable_heartbeats(connection& c) {
  const auto ours = settings_.heartbeat.interval;
  if (ours.count() <= 0 || !c.heartbeat_ms || *c.heartbeat_ms == 0) return;
  const auto send_every = std::min(ours, std::chrono::milliseconds(*c.heartbeat_ms));
  c.link->enable_heartbeats(send_every, settings_.heartbeat.detection_time(), c.lateness_record);
}

void router::accept_observer(connection& c) {
  handshake_over(c);
  c.kind = connection_kind::observer;
  c.established = true;
  wire::append_welcome(c.link->outbound(), make_welcome());
  c.link->flush();
}

void router::accept_node(connection& c, const wire::hello& h) {
  const node_id id(h.sender);
  if (id.is_nil() || routes_.find(id))
    return refuse(c, wire::refuse_code::duplicate_node,
                  "node " + id.to_string() + " is already here");
  if (c.kind == connection_kind::worker && static_cast<pid_t>(h.pid) != c.pid)
    spdlog::warn("{}: says pid {}", c.link->name(), h.pid);
  if (c.spawned) vacate_slot(c.slot);
  handshake_over(c);
  c.kind = connection_kind::local_node;
  c.established = true;
  c.node = id;
  if (!c.spawned) c.pid = static_cast<pid_t>(h.pid);
  c.link->set_name((c.spawned ? "worker " : "attached node ") + short_id(id.value()) + " (pid " +
                   std::to_string(c.pid) + ")");

  c.heartbeat_ms = h.heartbeat_ms;
  c.lateness_record = h.lateness.value_or(0);
  wire::welcome w = make_welcome();
  // What our queue to it holds before its senders would be held back (router::hold_back).
  w.flow_budget = static_cast<std::uint32_t>(
      std::min<std::size_t>(settings_.limits.max_queue_bytes / 2, UINT32_MAX));
  if (c.spawned) w.slot = c.slot;
  // What its join() checks locally (protocol.md §5.1); we check the first again.
  w.group_limits = wire::group_limits{static_cast<std::uint32_t>(std::min<std::size_t>(
                                          settings_.limits.max_groups_per_node, UINT32_MAX)),
                                      static_cast<std::uint32_t>(std::min<std::size_t>(
                                          settings_.limits.max_group_members, UINT32_MAX))};
  wire::append_welcome(c.link->outbound(), w);
  enable_heartbeats(c);
  send_cluster_snapshot(c);
  routes_.add(id, route{&c, settings_.self, static_cast<std::uint32_t>(c.pid), true, c.slot});
  const wire::node_entry entry{id, settings_.self, static_cast<std::uint32_t>(c.pid), c.slot};
  announce_nodes_up({entry}, &c, true);
  spdlog::info("node {} joined (pid {})", id.to_string(), c.pid);
}

}  // namespace galaxies::router
