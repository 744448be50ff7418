// The router's links to other hosts: dialling, the duplicate-link rule, peer membership.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <asio/generic/stream_protocol.hpp>

#include "router/router.hpp"
#include "transport/endpoint.hpp"
#include "transport/socket_setup.hpp"
#include "wire/message.hpp"

namespace galaxies::router {
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
    if (!it->second.stale && !it->second.redial) dial(id, row->address);
  }
}

void router::dial(const host_id& id, const std::string& address) {
  if (shutting_down_ || peers_.contains(id) || dialling_.contains(id)) return;
  auto endpoint = transport::parse_endpoint(address);
  if (!endpoint) {
    spdlog::warn("host {}: bad address '{}' in the registry", id.to_string(), address);
    return;
  }
  auto& attempt = dialling_[id];
  attempt.seq = ++dial_seq_;
  attempt.socket = std::make_shared<asio::ip::tcp::socket>(executor_);
  std::error_code open_error;
  attempt.socket->open(endpoint->protocol(), open_error);
  if (open_error) {
    spdlog::error("dial host {}: {}", id.to_string(), open_error.message());
    dialling_.erase(id);
    return;
  }
  transport::set_cloexec(attempt.socket->native_handle());
  auto timer = std::make_shared<asio::steady_timer>(executor_, limits::dial_connect_timeout);
  timer->async_wait([socket = attempt.socket](std::error_code ec) {
    if (!ec) socket->close(ec);  // the connect completes with operation_aborted
  });
  attempt.socket->async_connect(*endpoint, [this, id, address, seq = attempt.seq, timer,
                                            socket = attempt.socket](std::error_code ec) {
    timer->cancel();
    auto it = dialling_.find(id);
    if (it == dialling_.end() || it->second.seq != seq) return;  // abandoned meanwhile
    if (ec) {
      spdlog::debug("dial host {} at {}: {}", short_id(id.value()), address, ec.message());
      dialling_.erase(it);
      return schedule_redial(id);
    }
    transport::tune_host_link(socket->native_handle());
    const int family = socket->local_endpoint(ec).protocol().family();
    transport::socket generic(executor_, asio::generic::stream_protocol(family, IPPROTO_TCP),
                              socket->release());
    connection& c = add_connection(connection_kind::peer, std::move(generic),
                                   "link to host " + short_id(id.value()) + " at " + address);
    c.peer = id;
    c.peer_address = address;
    c.dialled_by_us = true;
    it->second.conn = &c;
    it->second.socket.reset();

    wire::hello h;
    h.role = wire::role::host;
    h.sender = settings_.self.value();
    h.target = id.value();
    h.pid = static_cast<std::uint32_t>(::getpid());
    h.cluster = settings_.cluster;
    h.listen = settings_.address;
    h.max_frame = settings_.limits.max_frame_size;
    if (settings_.heartbeat.interval.count() > 0)
      h.heartbeat_ms = static_cast<std::uint32_t>(settings_.heartbeat.interval.count());
    h.hostname = settings_.hostname;
    wire::append_hello(c.link->outbound(), h);
    c.start();
    c.link->expire_after(limits::handshake_timeout, transport::close_reason::handshake_timeout);
    c.link->flush();
  });
}

void router::abandon_dial(const host_id& id) {
  auto it = dialling_.find(id);
  if (it == dialling_.end()) return;
  if (it->second.conn) {
    it->second.conn->redial = false;
    it->second.conn->link->close(transport::close_reason::duplicate);
  }
  if (it->second.socket) {
    std::error_code ignored;
    it->second.socket->close(ignored);
  }
  dialling_.erase(it);
}

void router::schedule_redial(const host_id& id) {
  if (shutting_down_ || peers_.contains(id) || dialling_.contains(id)) return;
  auto it = wanted_.find(id);
  if (it == wanted_.end() || it->second.stale || it->second.redial) return;
  const auto delay = it->second.retry.next();
  it->second.redial = std::make_unique<asio::steady_timer>(executor_, delay);
  it->second.redial->async_wait([this, id](std::error_code ec) {
    if (ec) return;
    auto w = wanted_.find(id);
    if (w == wanted_.end()) return;
    const std::string address = w->second.address;
    w->second.redial.reset();
    dial(id, address);
  });
}

void router::on_dial_answer(connection& c, const wire::frame_view& frame) {
  if (frame.header.type == wire::frame_type::refuse) {
    wire::refuse r;
    if (wire::decode_refuse(frame, r))
      return c.link->close(transport::close_reason::protocol_error);
    if (r.code == wire::refuse_code::duplicate_link) {
      spdlog::debug("{}: {}", c.link->name(), r.text);
      c.redial = false;
      return c.link->close(transport::close_reason::duplicate);
    }
    spdlog::warn("{}: refused: {}: {}", c.link->name(), wire::to_string(r.code), r.text);
    if (r.code == wire::refuse_code::wrong_target) {
      // The registry row is stale: another host now serves that address.
      c.redial = false;
      if (auto it = wanted_.find(c.peer); it != wanted_.end()) it->second.stale = true;
      if (callbacks_.stale_peer) callbacks_.stale_peer(c.peer, c.peer_address);
    }
    return c.link->close(transport::close_reason::refused);
  }
  wire::welcome w;
  if (frame.header.type != wire::frame_type::welcome || wire::decode_welcome(frame, w) ||
      w.host != c.peer) {
    spdlog::warn("{}: bad handshake answer", c.link->name());
    return c.link->close(transport::close_reason::protocol_error);
  }
  c.link->cancel_expiry();
  c.link->set_max_frame_size(std::min(w.max_frame.value_or(settings_.limits.max_frame_size),
                                      settings_.limits.max_frame_size));
  c.peer_hostname = w.hostname;
  c.heartbeat_ms = w.heartbeat_ms;
  dialling_.erase(c.peer);
  establish_peer(c);
}

void router::accept_peer(connection& c, const wire::hello& h) {
  const host_id p(h.sender);
  if (p == settings_.self || p.is_nil() || h.listen.empty())
    return refuse(c, wire::refuse_code::malformed, "bad host identity");
  if (auto old = peers_.find(p); old != peers_.end()) {
    // Our own dial won a simultaneous-dial race (§6): this hello may be the loser, sent before
    // the peer accepted ours. If the peer did drop our link instead, our heartbeat ends it within
    // the detection time and we redial.
    if (old->second->dialled_by_us && settings_.self < p)
      return refuse(c, wire::refuse_code::duplicate_link,
                    "already linked to host " + p.to_string());
    // Otherwise a host dials only when it holds no link to us: it has declared this one dead (its
    // heartbeat fired first, or the connection broke on its side only). Ours is dead as well, we
    // just have not noticed yet; refusing would keep the pair apart until we do. Its nodes leave
    // now and join again over the new link: never a silent swap.
    connection& stale = *old->second;
    spdlog::info("host {} dialled again: replacing our link to it", p.to_string());
    stale.redial = false;
    retire_peer(stale, leave_reason::link_lost);
    stale.link->close(transport::close_reason::replaced);
  }
  if (dialling_.contains(p)) {
    // Both dialled at once: the link dialled by the smaller UUID is the pair's link (§6).
    if (settings_.self < p)
      return refuse(c, wire::refuse_code::duplicate_link,
                    "both hosts dialled; the link dialled by the smaller uuid wins");
    abandon_dial(p);
  }
  c.kind = connection_kind::peer;
  c.peer = p;
  c.peer_address = h.listen;
  c.peer_hostname = h.hostname;
  c.heartbeat_ms = h.heartbeat_ms;
  c.dialled_by_us = false;
  wire::append_welcome(c.link->outbound(), make_welcome());
  establish_peer(c);
}

void router::establish_peer(connection& c) {
  c.established = true;
  peers_[c.peer] = &c;
  c.link->set_name("link to host " + short_id(c.peer.value()) + " at " + c.peer_address);
  enable_heartbeats(c);
  if (auto it = wanted_.find(c.peer); it != wanted_.end()) {
    it->second.retry.reset();
    if (it->second.redial) {
      it->second.redial->cancel();
      it->second.redial.reset();
    }
  }
  // Our nodes, as one snapshot (chunked), before anything they send crosses this link.
  append_node_snapshot(c, [](const route& r) { return r.local; });
  c.link->flush();
  announce_host_up(c);
  spdlog::info("linked to host {} at {} ({})", c.peer.to_string(), c.peer_address,
               c.dialled_by_us ? "dialled" : "accepted");
}

void router::on_peer_frame(connection& c, const wire::frame_view& frame) {
  using wire::frame_type;
  switch (frame.header.type) {
    case frame_type::send:
    case frame_type::request:
    case frame_type::reply:
    case frame_type::broadcast:
      return forward(c, frame);
    case frame_type::nodes_up:
      return on_peer_nodes_up(c, frame);
    case frame_type::nodes_down:
      return on_peer_nodes_down(c, frame);
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
  std::vector<wire::node_entry> entries;
  bool snapshot = false;
  if (wire::decode_nodes_up(frame, entries, snapshot))
    return c.link->close(transport::close_reason::protocol_error);
  std::vector<wire::node_entry> added;
  added.reserve(entries.size());
  for (const auto& e : entries) {
    if (e.host != c.peer) {
      spdlog::warn("{}: announced node {} of another host", c.link->name(), e.node.to_string());
      return c.link->close(transport::close_reason::protocol_error);
    }
    if (routes_.add(e.node, route{&c, c.peer, e.pid, false})) added.push_back(e);
  }
  announce_nodes_up(added, nullptr, false);
}

void router::on_peer_nodes_down(connection& c, const wire::frame_view& frame) {
  std::vector<wire::node_down_entry> entries;
  if (wire::decode_nodes_down(frame, entries))
    return c.link->close(transport::close_reason::protocol_error);
  std::vector<wire::node_down_entry> removed;
  removed.reserve(entries.size());
  for (const auto& e : entries) {
    const route* r = routes_.find(e.node);
    if (!r || r->via != &c) continue;
    routes_.remove(e.node);
    removed.push_back(e);
  }
  announce_nodes_down(removed, nullptr, false);
}

void router::peer_lost(connection& c, transport::close_reason reason) {
  if (!c.established) {
    if (auto it = dialling_.find(c.peer); it != dialling_.end() && it->second.conn == &c)
      dialling_.erase(it);
    if (c.dialled_by_us && c.redial) schedule_redial(c.peer);
    return;
  }
  leave_reason why = c.peer_leave_reason;  // what its goodbye said
  if (!c.said_goodbye_peer) {
    if (reason == transport::close_reason::heartbeat_timeout)
      why = leave_reason::link_lost;
    else if (reason == transport::close_reason::protocol_error)
      why = leave_reason::protocol_error;
    else
      why = leave_reason::host_left;  // the connection ended without a goodbye: master gone
  }
  retire_peer(c, why);
  if (!shutting_down_) schedule_redial(c.peer);
}

void router::retire_peer(connection& c, leave_reason why) {
  c.established = false;
  if (auto it = peers_.find(c.peer); it != peers_.end() && it->second == &c) peers_.erase(it);
  std::vector<wire::node_down_entry> gone;
  for (const auto& [id, r] : routes_.remove_via(&c)) gone.push_back({id, why, 0});
  announce_nodes_down(gone, nullptr, false);
  announce_host_down(c.peer, why);
  spdlog::info("host {} left ({}): {} nodes gone", c.peer.to_string(), galaxies::to_string(why),
               gone.size());
}

}  // namespace galaxies::router
