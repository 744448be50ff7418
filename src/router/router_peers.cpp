// The router's links to other hosts: dialling a few at a time, the dialler's side of the
// handshake, the duplicate-link and displacement rules, and what a peer may say about membership.
#include <spdlog/spdlog.h>

#include <unordered_set>

#include "base/endian.hpp"
#include "base/text.hpp"
#include "router/router.hpp"
#include "security/peer_auth.hpp"
#include "transport/path_loss.hpp"
#include "wire/message.hpp"

namespace galaxies::router {
namespace {

std::span<const std::byte> binding_of(const std::optional<transport::stream::binding>& b) {
  return b ? std::span<const std::byte>(*b) : std::span<const std::byte>();
}

}  // namespace

void router::set_peers(const std::vector<peer_row>& peers) {
  if (shutting_down_) return;
  std::unordered_map<host_id, const peer_row*> seen;
  for (const auto& row : peers)
    if (row.id != settings_.self) seen.emplace(row.id, &row);

  for (auto it = wanted_.begin(); it != wanted_.end();) {
    // A row that is gone stops redials; a link that is up stays up: rows are only hints.
    if (!seen.contains(it->first)) {
      if (it->second.redial) it->second.redial->cancel();
      it = wanted_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [id, row] : seen) {
    auto [it, inserted] = wanted_.try_emplace(id);
    if (!inserted && it->second.address != row->address) it->second.stale = false;
    it->second.address = row->address;
    if (!it->second.stale && !it->second.redial) dial(id);
  }
}

// Dials at once while fewer than max_dials are in progress, else queues: a registry listing
// thousands of hosts must not open thousands of sockets in one turn.
void router::dial(const host_id& id) {
  if (shutting_down_ || peers_.contains(id) || dialling_.contains(id)) return;
  auto w = wanted_.find(id);
  if (w == wanted_.end() || w->second.queued) return;
  if (dialling_.size() >= settings_.limits.max_dials) {
    w->second.queued = true;
    dial_queue_.push_back(id);
    return;
  }
  start_dial(id, w->second.address);
}

void router::end_dial(const host_id& id) {
  dialling_.erase(id);
  while (!dial_queue_.empty() && dialling_.size() < settings_.limits.max_dials) {
    const host_id next = dial_queue_.front();
    dial_queue_.pop_front();
    auto w = wanted_.find(next);
    if (w == wanted_.end()) continue;  // its row went meanwhile
    w->second.queued = false;
    if (!w->second.stale && !w->second.redial) dial(next);
  }
}

void router::start_dial(const host_id& id, const std::string& address) {
  auto& attempt = dialling_[id];
  attempt.seq = ++dial_seq_;
  auto connected = [this, id, address, seq = attempt.seq](std::error_code ec,
                                                          transport::socket socket) {
    auto it = dialling_.find(id);
    if (it == dialling_.end() || it->second.seq != seq) return;  // abandoned meanwhile
    if (ec) {
      if (ec == std::errc::invalid_argument)
        spdlog::warn("host {}: bad address '{}' in the registry", id.to_string(),
                     base::printable(address));
      else
        spdlog::debug("dial host {} at {}: {}", short_id(id.value()), base::printable(address),
                      ec.message());
      end_dial(id);
      return schedule_redial(id);
    }
    on_dial_connected(id, address, std::move(socket));
  };
  if (callbacks_.connect)
    callbacks_.connect(address, std::move(connected));
  else
    transport::connect_tcp(executor_, address, limits::dial_connect_timeout, std::move(connected));
}

void router::on_dial_connected(const host_id& id, const std::string& address,
                               transport::socket socket) {
  const bool on_this_machine = transport::remote_of(socket).loopback;
  transport::stream stream = settings_.tls ? transport::stream(std::move(socket), *settings_.tls,
                                                               transport::tls_role::client)
                                           : transport::stream(std::move(socket));
  connection& c =
      add_connection(connection_kind::peer, std::move(stream),
                     "link to host " + short_id(id.value()) + " at " + base::printable(address));
  c.peer = id;
  c.peer_address = address;
  c.remote = address;
  c.dialled_by_us = true;
  c.step = handshake_step::awaiting_answer;
  dialling_[id].conn = &c;

  wire::hello h;
  h.role = wire::role::host;
  h.sender = settings_.self.value();
  h.target = id.value();
  describe_self(h);
  if (settings_.secret) h.auth_nonce = security::make_nonce();
  wire::append_hello(c.hello_frame, h);
  c.link->outbound() = c.hello_frame;
  c.on_this_machine = on_this_machine;
  if (on_this_machine) forgive_cpu_wait_of(c, ::getpid());
  c.start();
  c.link->expire_after(limits::handshake_timeout, transport::close_reason::handshake_timeout);
  c.link->flush();
}

void router::abandon_dial(const host_id& id) {
  auto it = dialling_.find(id);
  if (it == dialling_.end()) return;
  if (it->second.conn) {
    it->second.conn->redial = false;
    it->second.conn->link->close(transport::close_reason::duplicate);
  }
  // A connect still in progress completes into the void: its attempt is gone.
  end_dial(id);
}

void router::schedule_redial(const host_id& id) {
  if (shutting_down_ || peers_.contains(id) || dialling_.contains(id)) return;
  auto it = wanted_.find(id);
  if (it == wanted_.end() || it->second.stale || it->second.redial || it->second.queued) return;
  const auto delay = it->second.retry.next();
  it->second.redial = std::make_unique<asio::steady_timer>(executor_, delay);
  it->second.redial->async_wait([this, id](std::error_code ec) {
    if (ec) return;
    auto w = wanted_.find(id);
    if (w == wanted_.end()) return;
    w->second.redial.reset();
    dial(id);
  });
}

// ---- the dialler's handshake ----------------------------------------------------------------

void router::on_dial_answer(connection& c, const wire::frame_view& frame) {
  const auto type = frame.header.type;
  if (type == wire::frame_type::refuse) return on_dial_refused(c, frame);
  if (type == wire::frame_type::auth_challenge && c.step == handshake_step::awaiting_answer) {
    if (!settings_.secret)
      return reject_peer(c, "it asks for a cluster secret, and this host has none (--secret-file)");
    wire::auth_value challenge;
    if (wire::decode_auth_value(frame, challenge))
      return c.link->close(transport::close_reason::protocol_error);
    c.challenge = challenge;
    c.step = handshake_step::awaiting_welcome;
    const auto proof =
        security::dialler_proof(std::as_bytes(std::span(*settings_.secret)), c.hello_frame,
                                challenge, binding_of(c.link->stream().tls_binding()));
    wire::append_auth_proof(c.link->outbound(), proof);
    return c.link->flush();
  }
  if (type == wire::frame_type::welcome) return on_dial_welcome(c, frame);
  spdlog::warn("{}: unexpected {} in the handshake", c.link->name(), wire::to_string(type));
  c.link->close(transport::close_reason::protocol_error);
}

void router::reject_peer(connection& c, const std::string& why) {
  spdlog::warn("{}: {}; closing", c.link->name(), why);
  c.redial = false;
  c.link->close(transport::close_reason::unauthorized);
}

void router::on_dial_refused(connection& c, const wire::frame_view& frame) {
  wire::refuse r;
  if (wire::decode_refuse(frame, r)) return c.link->close(transport::close_reason::protocol_error);
  const std::string text = base::printable(r.text, limits::max_refuse_text);
  ++counters_
        .refusals_received[static_cast<std::size_t>(r.code) % counters_.refusals_received.size()];
  if (r.code == wire::refuse_code::duplicate_link) {
    spdlog::debug("{}: {}", c.link->name(), text);
    c.redial = false;
    return c.link->close(transport::close_reason::duplicate);
  }
  spdlog::warn("{}: refused: {}{}{}", c.link->name(), wire::to_string(r.code),
               text.empty() ? "" : ": ", text);
  if (r.code == wire::refuse_code::wrong_target) {
    // The registry row is stale: another host now serves that address.
    c.redial = false;
    if (auto it = wanted_.find(c.peer); it != wanted_.end()) it->second.stale = true;
    if (callbacks_.stale_peer) callbacks_.stale_peer(c.peer, c.peer_address);
  }
  c.link->close(transport::close_reason::refused);
}

void router::on_dial_welcome(connection& c, const wire::frame_view& frame) {
  wire::welcome w;
  if (wire::decode_welcome(frame, w) || w.version != wire::protocol_version || w.host != c.peer ||
      w.cluster != settings_.cluster) {
    spdlog::warn("{}: bad handshake answer", c.link->name());
    return c.link->close(transport::close_reason::protocol_error);
  }
  if (settings_.secret) {
    // It must prove the secret too: a host that merely answers is not one of ours.
    if (c.step != handshake_step::awaiting_welcome || !w.auth_proof)
      return reject_peer(c, "it did not prove the cluster secret");
    std::vector<std::byte> zeroed(frame.bytes.begin(), frame.bytes.end());
    std::fill(zeroed.end() - wire::welcome_proof_size, zeroed.end(), std::byte{0});
    const auto expected =
        security::acceptor_proof(std::as_bytes(std::span(*settings_.secret)), c.hello_frame,
                                 c.challenge, binding_of(c.link->stream().tls_binding()), zeroed);
    if (!security::same_digest(expected, *w.auth_proof))
      return reject_peer(c, "wrong proof of the cluster secret");
    c.authenticated = true;
  }
  if (auto why = flow_mismatch(w.flow_window); !why.empty()) return reject_peer(c, why);
  c.trusted = true;
  c.link->cancel_expiry();
  c.link->set_max_frame_size(std::min(w.max_frame.value_or(settings_.limits.max_frame_size),
                                      settings_.limits.max_frame_size));
  c.peer_hostname = w.hostname;
  c.peer_pid = static_cast<pid_t>(w.pid);
  c.heartbeat_ms = w.heartbeat_ms;
  c.lateness_record = w.lateness.value_or(0);
  c.peer_probes = w.probes.value_or(0) != 0;
  c.hello_frame = {};
  end_dial(c.peer);
  establish_peer(c);
}

// ---- the acceptor's rules for a second link -------------------------------------------------

void router::accept_peer(connection& c) {
  const host_id p = c.peer;
  if (auto old = peers_.find(p); old != peers_.end()) {
    // Our own dial won a simultaneous-dial race (§6): this hello may be the loser, sent before
    // the peer accepted ours. If the peer did drop our link instead, our heartbeat ends it within
    // the detection time and we redial.
    if (old->second->dialled_by_us && settings_.self < p)
      return refuse(c, wire::refuse_code::duplicate_link,
                    "already linked to host " + p.to_string());
    if (displacing_.contains(p))
      return refuse(c, wire::refuse_code::duplicate_link,
                    "another hello for host " + p.to_string() + " is being checked");
    // A host dials only once it holds no link to us, so a genuine redial means our link is dead
    // too; but a hello is only a claim, and a live link must never yield to one. Hold it, and
    // prod the old link: a peer that closed its end answers with a reset at once, a silent one
    // fails its heartbeats within the detection time. Whichever way it ends, the held hello takes
    // its place; if it is still alive when the hold runs out, the hello is refused.
    c.step = handshake_step::awaiting_displacement;
    c.link->cancel_expiry();
    displacing_[p] = &c;
    connection& live = *old->second;
    send_control(live, [](std::vector<std::byte>& out) { wire::append_heartbeat(out); });
    const bool beats = settings_.heartbeat.interval.count() > 0 && live.heartbeat_ms.value_or(0);
    const auto hold =
        beats
            ? settings_.heartbeat.detection_time() + settings_.heartbeat.interval
            : std::chrono::duration_cast<std::chrono::milliseconds>(limits::displacement_check_max);
    c.hold = std::make_unique<asio::steady_timer>(executor_, hold);
    c.hold->async_wait([this, conn = &c, p](std::error_code ec) {
      if (ec) return;
      auto it = displacing_.find(p);
      if (it == displacing_.end() || it->second != conn) return;
      displacing_.erase(it);
      refuse(*conn, wire::refuse_code::duplicate_link,
             "host " + p.to_string() + " is still linked; its live link stays");
    });
    spdlog::info("host {} dialled again: checking that our link to it is gone", p.to_string());
    return;
  }
  complete_peer_accept(c);
}

void router::complete_peer_accept(connection& c) {
  const host_id p = c.peer;
  if (dialling_.contains(p)) {
    // Both dialled at once: the link dialled by the smaller UUID is the pair's link (§6).
    if (settings_.self < p)
      return refuse(c, wire::refuse_code::duplicate_link,
                    "both hosts dialled; the link dialled by the smaller uuid wins");
    abandon_dial(p);
  }
  if (c.hold) c.hold->cancel();
  handshake_over(c);
  c.kind = connection_kind::peer;
  c.step = handshake_step::done;
  send_host_welcome(c);
  c.hello_frame = {};
  establish_peer(c);
}

void router::establish_peer(connection& c) {
  c.established = true;
  c.step = handshake_step::done;
  peers_[c.peer] = &c;
  c.link->set_name("link to host " + short_id(c.peer.value()) + " at " + c.peer_address);
  // A master on this machine said its pid: its silences forgive what it waits for a core too,
  // not only what we wait. Claimed, not proven (another pid namespace would name another
  // process), which costs at most the link's bounded stretch.
  if (c.on_this_machine && c.peer_pid > 0) forgive_cpu_wait_of(c, ::getpid(), c.peer_pid);
  // Only the link calls its probe, while it is open: it outlives no socket.
  c.link->forgive_path_loss([link = c.link.get()] {
    return transport::read_tcp_path(link->stream().lowest_layer().native_handle());
  });
  enable_heartbeats(c);
  c.link->enable_probes(c.peer_probes);
  if (auto it = wanted_.find(c.peer); it != wanted_.end()) {
    ++it->second.links;
    it->second.retry.reset();
    if (it->second.redial) {
      it->second.redial->cancel();
      it->second.redial.reset();
    }
  }
  // Our nodes, as one snapshot (chunked), then their groups, before anything they send crosses
  // this link.
  append_node_snapshot(c, [](const route& r) { return r.local; });
  append_group_snapshot(c, [](const route& r) { return r.local; });
  c.link->flush();
  announce_host_up(c);
  spdlog::info("linked to host {} at {} ({}{})", c.peer.to_string(), c.peer_address,
               c.dialled_by_us ? "dialled" : "accepted", c.authenticated ? ", authenticated" : "");
}

// ---- what an established peer may say -------------------------------------------------------

void router::on_peer_frame(connection& c, const wire::frame_view& frame) {
  using wire::frame_type;
  switch (frame.header.type) {
    case frame_type::send:
    case frame_type::request:
    case frame_type::reply:
    case frame_type::broadcast:
    case frame_type::send_batch:
    case frame_type::publish: {
      // A peer speaks for the nodes it announced, and for no other. One exception: a reply from a
      // node that has left since it was asked (the far master answers node_left for it, or the
      // answer crossed its nodes_down); the ledger then decides. A node we know elsewhere is
      // never one of its own.
      const node_id src = wire::peek_src(frame);
      const route* r = routes_.find(src);
      const bool departed = !r && frame.header.type == frame_type::reply;
      if (!departed && (!r || r->via != &c)) {
        spdlog::warn("{}: {} from node {}, which this host did not announce", c.link->name(),
                     wire::to_string(frame.header.type), src.to_string());
        return c.link->close(transport::close_reason::protocol_error);
      }
      if (frame.header.type == frame_type::publish) return forward_publish(c, frame);
      if (!body_is_valid(c, frame)) return;
      return forward(c, frame);
    }
    case frame_type::credit: {
      // Only nodes grant credit, and a peer's nodes_down follows its node's last frame: the
      // granting node is one this peer announced and still has.
      const route* r = routes_.find(wire::peek_src(frame));
      if (!r || r->via != &c) {
        spdlog::warn("{}: credit from node {}, which this host did not announce", c.link->name(),
                     wire::peek_src(frame).to_string());
        return c.link->close(transport::close_reason::protocol_error);
      }
      return forward_credit(c, frame);
    }
    case frame_type::nodes_up:
      return on_peer_nodes_up(c, frame);
    case frame_type::nodes_down:
      return on_peer_nodes_down(c, frame);
    case frame_type::groups_up:
    case frame_type::groups_down:
      return on_groups_frame(c, frame);
    case frame_type::goodbye: {
      leave_reason reason = leave_reason::graceful;
      if (wire::decode_goodbye(frame, reason)) reason = leave_reason::graceful;
      c.peer_leave_reason = reason;
      c.said_goodbye_peer = true;
      return c.link->close(transport::close_reason::eof);
    }
    default:
      spdlog::warn("{}: unexpected {}", c.link->name(), wire::to_string(frame.header.type));
      return c.link->close(transport::close_reason::protocol_error);
  }
}

void router::on_peer_nodes_up(connection& c, const wire::frame_view& frame) {
  // Judged by its count before anything is decoded or allocated.
  const auto body = frame.body();
  const std::size_t count =
      body.size() >= 4 ? base::load_le<std::uint32_t>(body.data()) : std::size_t{0};
  if (c.announced_nodes + count > settings_.limits.max_nodes_per_host) {
    spdlog::warn("{}: announces {} more nodes; a host may have at most {} (max_nodes_per_host)",
                 c.link->name(), count, settings_.limits.max_nodes_per_host);
    return c.link->close(transport::close_reason::protocol_error);
  }
  std::vector<wire::node_entry> entries;
  bool snapshot = false;
  if (wire::decode_nodes_up(frame, entries, snapshot)) {
    spdlog::warn("{}: malformed nodes_up", c.link->name());
    return c.link->close(transport::close_reason::protocol_error);
  }
  std::vector<wire::node_entry> added;
  added.reserve(entries.size());
  for (const auto& e : entries) {
    const route* known = routes_.find(e.node);
    if (e.host != c.peer || e.node.is_nil() || (known && known->via != &c)) {
      spdlog::warn("{}: announced node {} of host {}, which is not its own to announce",
                   c.link->name(), e.node.to_string(), e.host.to_string());
      return c.link->close(transport::close_reason::protocol_error);
    }
    if (known) continue;
    // One live node per slot (protocol.md §5): the slot's last node must have gone first.
    if (e.slot != wire::no_slot && !c.filled_slots.insert(e.slot).second) {
      spdlog::warn("{}: announced node {} in slot {}, which another of its live nodes fills",
                   c.link->name(), e.node.to_string(), e.slot);
      return c.link->close(transport::close_reason::protocol_error);
    }
    routes_.add(e.node, route{&c, c.peer, e.pid, false, e.slot});
    ++c.announced_nodes;
    added.push_back(e);
  }
  announce_nodes_up(added, nullptr, false);
}

void router::on_peer_nodes_down(connection& c, const wire::frame_view& frame) {
  std::vector<wire::node_down_entry> entries;
  if (wire::decode_nodes_down(frame, entries)) {
    spdlog::warn("{}: malformed nodes_down", c.link->name());
    return c.link->close(transport::close_reason::protocol_error);
  }
  std::vector<wire::node_down_entry> removed;
  std::unordered_set<node_id> gone;
  removed.reserve(entries.size());
  for (const auto& e : entries) {
    const route* r = routes_.find(e.node);
    if (!r || r->via != &c) continue;
    c.filled_slots.erase(r->slot);
    routes_.remove(e.node);
    drop_groups(e.node);
    --c.announced_nodes;
    removed.push_back(e);
    gone.insert(e.node);
  }
  nodes_gone(gone);
  announce_nodes_down(removed, c, false);
}

void router::peer_lost(connection& c, transport::close_reason reason) {
  if (!c.established) {
    if (auto it = dialling_.find(c.peer); it != dialling_.end() && it->second.conn == &c)
      end_dial(c.peer);
    if (c.dialled_by_us && c.redial) schedule_redial(c.peer);
    return;
  }
  leave_reason why = c.peer_leave_reason;  // what its goodbye said
  if (!c.said_goodbye_peer) {
    if (reason == transport::close_reason::heartbeat_timeout) {
      why = leave_reason::link_lost;
      ++counters_.silent_peers_lost;
    } else if (reason == transport::close_reason::protocol_error ||
               reason == transport::close_reason::internal_error)
      why = leave_reason::protocol_error;
    else if (reason == transport::close_reason::overloaded ||
             reason == transport::close_reason::write_stall)
      why = leave_reason::overloaded;
    else
      why = leave_reason::host_left;  // the connection ended without a goodbye: master gone
  }
  retire_peer(c, why);
  // A hello that claimed this host was waiting for this link to go: it takes its place now.
  if (auto it = displacing_.find(c.peer); it != displacing_.end()) {
    connection& next = *it->second;
    displacing_.erase(it);
    spdlog::info("host {}: old link gone ({}); accepting its new one", c.peer.to_string(),
                 transport::to_string(reason));
    complete_peer_accept(next);
    return;
  }
  if (!shutting_down_) schedule_redial(c.peer);
}

void router::retire_peer(connection& c, leave_reason why) {
  c.established = false;
  if (auto it = peers_.find(c.peer); it != peers_.end() && it->second == &c) peers_.erase(it);
  std::vector<wire::node_down_entry> gone;
  std::unordered_set<node_id> ids;
  for (const auto& [id, r] : routes_.remove_via(&c)) {
    drop_groups(id);
    gone.push_back({id, why, 0});
    ids.insert(id);
  }
  c.announced_nodes = 0;
  c.filled_slots.clear();
  nodes_gone(ids);
  announce_nodes_down(gone, c, false);
  announce_host_down(c, why);
  spdlog::info("host {} left ({}): {} nodes gone", c.peer.to_string(), galaxies::to_string(why),
               gone.size());
}

}  // namespace galaxies::router
