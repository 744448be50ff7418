#include "router/router.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <asio/generic/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include "galaxies/node.hpp"
#include "wire/message.hpp"

namespace galaxies::router {
namespace {
// Membership frames are chunked so that each stays far below any frame limit.
constexpr std::size_t membership_chunk = 4096;

}  // namespace

void connection::on_frame(const wire::frame_view& frame) {
  owner_.on_frame(*this, frame);
}
void connection::on_closed(transport::close_reason reason, std::error_code error) {
  owner_.on_closed(*this, reason, error);
}

router::router(const asio::any_io_executor& executor, settings s, callbacks cb)
    : executor_(executor), settings_(std::move(s)), callbacks_(std::move(cb)) {}

router::~router() {
  for (auto& [ptr, c] : connections_) {
    c->link->detach();
    c->link->close(transport::close_reason::shutdown);
  }
}

connection& router::add_connection(connection_kind kind, transport::socket socket,
                                   std::string name) {
  transport::link_settings ls;
  ls.max_frame_size = std::min(limits::handshake_max_frame_size, settings_.limits.max_frame_size);
  ls.max_queue_bytes = settings_.limits.max_queue_bytes;
  ls.name = std::move(name);
  auto link = std::make_shared<transport::link>(std::move(socket), std::move(ls));
  auto owned = std::make_unique<connection>(*this, kind, std::move(link));
  connection& c = *owned;
  connections_.emplace(&c, std::move(owned));
  return c;
}

void router::accept_tcp(transport::socket socket) {
  if (shutting_down_) return;
  std::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  std::string name = "inbound tcp";
  if (!ec) {
    asio::ip::tcp::endpoint ep;
    std::memcpy(ep.data(), remote.data(), std::min<std::size_t>(remote.size(), ep.capacity()));
    ep.resize(remote.size());
    name += " from " + ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  connection& c = add_connection(connection_kind::inbound_tcp, std::move(socket), std::move(name));
  c.start();
  c.link->expire_after(limits::handshake_timeout, transport::close_reason::handshake_timeout);
}

void router::accept_unix(transport::socket socket) {
  if (shutting_down_) return;
  connection& c =
      add_connection(connection_kind::inbound_unix, std::move(socket), "local socket client");
  c.start();
  c.link->expire_after(limits::handshake_timeout, transport::close_reason::handshake_timeout);
}

void router::adopt_worker(int channel_fd, pid_t pid) {
  transport::socket socket(executor_, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM),
                           channel_fd);
  connection& c = add_connection(connection_kind::worker, std::move(socket),
                                 "worker pid " + std::to_string(pid));
  c.pid = pid;
  c.spawned = true;
  c.start();
  c.link->expire_after(limits::handshake_timeout, transport::close_reason::handshake_timeout);
}

void router::worker_exited(pid_t pid, int wait_status) {
  if (awaiting_exit_.contains(pid)) return finish_worker_leave(pid, wait_status);
  // The channel's EOF usually follows within microseconds; its close names this status.
  for (auto& [ptr, c] : connections_)
    if (c->spawned && c->pid == pid && c->link->is_open()) {
      exit_statuses_[pid] = wait_status;
      return;
    }
}

void router::finish_worker_leave(pid_t pid, int wait_status) {
  auto it = awaiting_exit_.find(pid);
  if (it == awaiting_exit_.end()) return;
  connection& c = *it->second;
  awaiting_exit_.erase(it);
  local_node_left(c, leave_reason::exited, wait_status);
  remove_connection(c);
}

void router::on_frame(connection& c, const wire::frame_view& frame) {
  switch (c.kind) {
    case connection_kind::inbound_tcp:
    case connection_kind::inbound_unix:
    case connection_kind::worker:
      if (frame.header.type != wire::frame_type::hello) {
        spdlog::warn("{}: {} before hello", c.link->name(), wire::to_string(frame.header.type));
        return c.link->close(transport::close_reason::protocol_error);
      }
      return on_hello(c, frame);
    case connection_kind::local_node:
      return on_local_frame(c, frame);
    case connection_kind::observer:
      if (frame.header.type == wire::frame_type::status_request) {
        wire::append_status_reply(c.link->outbound(), status().dump());
        return c.link->flush();
      }
      spdlog::warn("{}: observer sent {}", c.link->name(), wire::to_string(frame.header.type));
      return c.link->close(transport::close_reason::protocol_error);
    case connection_kind::peer:
      if (!c.established) return on_dial_answer(c, frame);
      return on_peer_frame(c, frame);
  }
}

// How long a worker's leave waits for its reap, so that nodeLeft can name the exit status. The
// SIGCHLD normally lands within a millisecond of the channel's EOF.
constexpr auto reap_wait = std::chrono::milliseconds(50);

void router::on_closed(connection& c, transport::close_reason reason, std::error_code) {
  if (c.kind == connection_kind::local_node) {
    leave_reason why = leave_reason::disconnected;
    int detail = 0;
    if (c.said_goodbye) {
      why = leave_reason::graceful;
    } else if (reason == transport::close_reason::heartbeat_timeout) {
      // Silent (stopped, or stuck in a handler): it leaves now, and a worker of ours is killed so
      // that it can never come back as a node nobody knows; the supervisor replaces it.
      why = leave_reason::link_lost;
      if (c.spawned && !exit_statuses_.contains(c.pid)) ::kill(c.pid, SIGKILL);
    } else if (reason == transport::close_reason::protocol_error) {
      why = leave_reason::protocol_error;
    } else if (c.spawned) {
      why = leave_reason::exited;
      auto it = exit_statuses_.find(c.pid);
      if (it == exit_statuses_.end() && !shutting_down_) {
        // Until then the route stays, and requests to it are answered node_left.
        awaiting_exit_[c.pid] = &c;
        auto timer = std::make_shared<asio::steady_timer>(executor_, reap_wait);
        timer->async_wait([this, timer, pid = c.pid](std::error_code ec) {
          if (!ec) finish_worker_leave(pid, -1);
        });
        return;
      }
      detail = it == exit_statuses_.end() ? -1 : it->second;
    }
    local_node_left(c, why, detail);
  } else if (c.kind == connection_kind::peer) {
    peer_lost(c, reason);
  }
  if (c.spawned) exit_statuses_.erase(c.pid);
  remove_connection(c);
}

void router::remove_connection(connection& c) {
  connections_.erase(&c);
  maybe_finish_shutdown();
}

// ---- handshakes -----------------------------------------------------------------------------

void router::on_hello(connection& c, const wire::frame_view& frame) {
  wire::hello h;
  if (auto ec = wire::decode_hello(frame, h))
    return refuse(c, wire::refuse_code::malformed, "malformed hello: " + ec.message());
  if (h.version != wire::protocol_version)
    return refuse(
        c, wire::refuse_code::bad_version,
        "protocol version " + std::to_string(h.version) + " not supported; this host speaks 1");
  if (h.cluster != settings_.cluster)
    return refuse(c, wire::refuse_code::wrong_cluster,
                  "this host is in cluster '" + settings_.cluster + "', not '" + h.cluster + "'");
  if (shutting_down_) return refuse(c, wire::refuse_code::shutting_down, "this host is stopping");

  const bool on_tcp = c.kind == connection_kind::inbound_tcp;
  const bool role_fits =
      on_tcp ? h.role == wire::role::host
             : (c.kind == connection_kind::worker
                    ? h.role == wire::role::worker
                    : h.role == wire::role::attached || h.role == wire::role::observer);
  if (!role_fits)
    return refuse(c, wire::refuse_code::wrong_role,
                  std::string("role '") + wire::to_string(h.role) + "' is not accepted here");
  const bool target_ok = h.target == settings_.self.value() || (!on_tcp && h.target.is_nil());
  if (!target_ok)
    return refuse(c, wire::refuse_code::wrong_target,
                  "this is host " + settings_.self.to_string() + ", not " + h.target.to_string());

  c.link->cancel_expiry();
  c.link->set_max_frame_size(std::min(h.max_frame.value_or(settings_.limits.max_frame_size),
                                      settings_.limits.max_frame_size));
  switch (h.role) {
    case wire::role::host:
      return accept_peer(c, h);
    case wire::role::observer:
      return accept_observer(c);
    default:
      return accept_node(c, h);
  }
}

wire::welcome router::make_welcome() const {
  wire::welcome w;
  w.host = settings_.self;
  w.pid = static_cast<std::uint32_t>(::getpid());
  w.cluster = settings_.cluster;
  w.listen = settings_.address;
  w.max_frame = settings_.limits.max_frame_size;
  if (settings_.heartbeat.interval.count() > 0)
    w.heartbeat_ms = static_cast<std::uint32_t>(settings_.heartbeat.interval.count());
  w.hostname = settings_.hostname;
  return w;
}

void router::enable_heartbeats(connection& c) {
  const auto ours = settings_.heartbeat.interval;
  if (ours.count() <= 0 || !c.heartbeat_ms || *c.heartbeat_ms == 0) return;
  const auto send_every = std::min(ours, std::chrono::milliseconds(*c.heartbeat_ms));
  c.link->enable_heartbeats(send_every, settings_.heartbeat.detection_time());
}

void router::refuse(connection& c, wire::refuse_code code, std::string text) {
  // Losing the simultaneous-dial race is routine, not a problem worth a warning.
  const auto level =
      code == wire::refuse_code::duplicate_link ? spdlog::level::info : spdlog::level::warn;
  spdlog::log(level, "{}: refused: {}: {}", c.link->name(), wire::to_string(code), text);
  wire::append_refuse(c.link->outbound(), {code, std::move(text)});
  c.link->close_after_flush(transport::close_reason::refused);
}

void router::accept_observer(connection& c) {
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
  c.kind = connection_kind::local_node;
  c.established = true;
  c.node = id;
  if (!c.spawned) c.pid = static_cast<pid_t>(h.pid);
  c.link->set_name((c.spawned ? "worker " : "attached node ") + short_id(id.value()) + " (pid " +
                   std::to_string(c.pid) + ")");

  c.heartbeat_ms = h.heartbeat_ms;
  wire::append_welcome(c.link->outbound(), make_welcome());
  enable_heartbeats(c);
  send_cluster_snapshot(c);
  routes_.add(id, route{&c, settings_.self, static_cast<std::uint32_t>(c.pid), true});
  const wire::node_entry entry{id, settings_.self, static_cast<std::uint32_t>(c.pid)};
  announce_nodes_up({entry}, &c, true);
  spdlog::info("node {} joined (pid {})", id.to_string(), c.pid);
}

// Hosts first (so that every node's host is known before the node), then every node.
void router::send_cluster_snapshot(connection& c) {
  std::vector<wire::host_entry> hosts{{settings_.self, settings_.address}};
  for (const auto& [id, peer] : peers_) hosts.push_back({id, peer->peer_address});
  wire::append_hosts_up(c.link->outbound(), hosts, true);

  append_node_snapshot(c, [](const route&) { return true; });
  c.link->flush();
}

void router::append_node_snapshot(connection& to,
                                  const std::function<bool(const route&)>& include) {
  std::vector<wire::node_entry> nodes;
  routes_.for_each([&](const node_id& id, const route& r) {
    if (!include(r)) return;
    nodes.push_back({id, r.host, r.pid});
    if (nodes.size() == membership_chunk) {
      wire::append_nodes_up(to.link->outbound(), nodes, false);
      nodes.clear();
    }
  });
  wire::append_nodes_up(to.link->outbound(), nodes, true);
}

// ---- local nodes ----------------------------------------------------------------------------

void router::on_local_frame(connection& c, const wire::frame_view& frame) {
  using wire::frame_type;
  const auto type = frame.header.type;
  if (wire::is_message(type)) {
    if (wire::peek_src(frame) != c.node) {
      spdlog::warn("{}: message with a forged source {}", c.link->name(),
                   wire::peek_src(frame).to_string());
      return c.link->close(transport::close_reason::protocol_error);
    }
    // The receiving node refuses a request or reply without an id as a broken master and drops
    // its connection: stop the frame here, on the one connection that sent it.
    if ((type == frame_type::request || type == frame_type::reply) &&
        wire::peek_request_id(frame) == 0) {
      spdlog::warn("{}: {} without a request id", c.link->name(), wire::to_string(type));
      return c.link->close(transport::close_reason::protocol_error);
    }
    return forward(c, frame);
  }
  if (type == frame_type::goodbye) {
    c.said_goodbye = true;
    return c.link->close(transport::close_reason::eof);
  }
  spdlog::warn("{}: unexpected {}", c.link->name(), wire::to_string(type));
  c.link->close(transport::close_reason::protocol_error);
}

void router::local_node_left(connection& c, leave_reason reason, int detail) {
  if (!routes_.remove(c.node)) return;
  spdlog::info("node {} left: {}", c.node.to_string(), galaxies::to_string(reason));
  announce_nodes_down({{c.node, reason, detail}}, &c, true);
}

// ---- forwarding -----------------------------------------------------------------------------

void router::forward(connection& from, const wire::frame_view& frame) {
  const bool from_peer = from.kind == connection_kind::peer;
  if (frame.header.type == wire::frame_type::broadcast) {
    // Local nodes get a copy; peers get one each, and never relay it further.
    for_each_local_node(&from, [&](connection& to) {
      if (to.link->enqueue(frame.bytes))
        ++counters_.forwarded;
      else
        ++counters_.dropped;
    });
    if (!from_peer)
      for (auto& [id, peer] : peers_) {
        if (peer->link->enqueue(frame.bytes))
          ++counters_.forwarded;
        else
          ++counters_.dropped;
      }
    return;
  }
  const route* r = routes_.find(wire::peek_dst(frame));
  // A peer may only ask us to deliver to our own nodes: there is no relaying between hosts.
  if (!r || (from_peer && !r->local)) {
    if (frame.header.type == wire::frame_type::request)
      return answer_request(from, frame, errc::no_such_node);
    ++counters_.dropped;
    return;
  }
  if (r->via->link->enqueue(frame.bytes)) {
    ++counters_.forwarded;
    return;
  }
  // Not writable: the node is leaving (its announcement follows). Otherwise its queue is full.
  if (frame.header.type == wire::frame_type::request)
    return answer_request(from, frame,
                          r->via->link->writable() ? errc::overloaded : errc::node_left);
  ++counters_.dropped;
}

void router::answer_request(connection& from, const wire::frame_view& request, errc status) {
  ++counters_.refused_requests;
  const std::string_view why = status == errc::no_such_node ? "no such node"
                               : status == errc::node_left  ? "node left"
                                                            : "queue full";
  if (!from.link->has_room(wire::message_frame_size(0, why.size()))) return;
  // The reply comes "from" the node that was asked, so the requester matches it like any other.
  wire::append_message(from.link->outbound(), wire::frame_type::reply, wire::peek_dst(request),
                       wire::peek_src(request), wire::peek_request_id(request),
                       static_cast<std::uint32_t>(status), {}, galaxies::as_bytes(why),
                       from.link->max_frame_size());
  from.link->flush();
}

// ---- announcements --------------------------------------------------------------------------

template <class Fn>
void router::for_each_local_node(const connection* except, Fn&& fn) {
  for (auto& [ptr, c] : connections_)
    if (ptr != except && c->kind == connection_kind::local_node && c->link->writable()) fn(*c);
}

void router::announce_nodes_up(const std::vector<wire::node_entry>& nodes, const connection* except,
                               bool to_peers) {
  if (nodes.empty()) return;
  for_each_local_node(except, [&](connection& c) {
    wire::append_nodes_up(c.link->outbound(), nodes, false);
    c.link->flush();
  });
  if (!to_peers) return;
  for (auto& [id, peer] : peers_) {
    wire::append_nodes_up(peer->link->outbound(), nodes, false);
    peer->link->flush();
  }
}

void router::announce_nodes_down(const std::vector<wire::node_down_entry>& nodes,
                                 const connection* except, bool to_peers) {
  if (nodes.empty()) return;
  for_each_local_node(except, [&](connection& c) {
    wire::append_nodes_down(c.link->outbound(), nodes);
    c.link->flush();
  });
  if (!to_peers) return;
  for (auto& [id, peer] : peers_) {
    wire::append_nodes_down(peer->link->outbound(), nodes);
    peer->link->flush();
  }
}

void router::announce_host_up(const connection& peer) {
  const std::vector<wire::host_entry> hosts{{peer.peer, peer.peer_address}};
  for_each_local_node(nullptr, [&](connection& c) {
    wire::append_hosts_up(c.link->outbound(), hosts, false);
    c.link->flush();
  });
}

void router::announce_host_down(const host_id& host, leave_reason reason) {
  const std::vector<wire::host_down_entry> hosts{{host, reason}};
  for_each_local_node(nullptr, [&](connection& c) {
    wire::append_hosts_down(c.link->outbound(), hosts);
    c.link->flush();
  });
}

// ---- shutdown -------------------------------------------------------------------------------

void router::shutdown(std::chrono::milliseconds within, std::function<void()> done) {
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  for (auto& [id, w] : wanted_)
    if (w.redial) w.redial->cancel();
  wanted_.clear();
  for (auto& [ptr, c] : connections_) {
    if (!c->link->writable()) continue;  // already closing (a worker awaiting its reap)
    if (c->kind == connection_kind::peer && c->established) {
      c->peer_leave_reason = leave_reason::graceful;
      wire::append_goodbye(c->link->outbound(), leave_reason::graceful);
      c->link->close_after_flush(transport::close_reason::shutdown, within);
    } else if (c->kind == connection_kind::local_node || c->kind == connection_kind::observer) {
      wire::append_goodbye(c->link->outbound(), leave_reason::graceful);
      c->link->close_after_flush(transport::close_reason::shutdown, within);
    } else {
      c->link->close(transport::close_reason::shutdown);
    }
  }
  shutdown_timer_ = std::make_unique<asio::steady_timer>(executor_, within);
  shutdown_timer_->async_wait([this](std::error_code ec) {
    if (ec) return;
    for (auto& [ptr, c] : connections_) c->link->close(transport::close_reason::shutdown);
  });
  maybe_finish_shutdown();
}

void router::maybe_finish_shutdown() {
  if (!shutting_down_ || !connections_.empty() || !shutdown_done_) return;
  if (shutdown_timer_) shutdown_timer_->cancel();
  asio::post(executor_, std::exchange(shutdown_done_, nullptr));
}

}  // namespace galaxies::router
