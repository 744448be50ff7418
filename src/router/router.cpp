// The router's life: accepting connections within limits, dispatching their frames, their end,
// announcements, housekeeping and shutdown.
#include "router/router.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <asio/generic/stream_protocol.hpp>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "galaxies/node.hpp"
#include "transport/local_peer.hpp"

namespace galaxies::router {
namespace {

// Membership frames are chunked so that each stays far below any frame limit.
constexpr std::size_t membership_chunk = 4096;
// How often expired request entries and stalled writers are looked for.
constexpr auto housekeeping_interval = std::chrono::milliseconds(250);

}  // namespace

void connection::on_frame(const wire::frame_view& frame) {
  owner_.on_frame(*this, frame);
}
void connection::on_closed(transport::close_reason reason, std::error_code error) {
  owner_.on_closed(*this, reason, error);
}
void connection::on_drained() {
  owner_.release_held_back(*this);
}

router::router(const asio::any_io_executor& executor, settings s, callbacks cb)
    : executor_(executor),
      settings_(std::move(s)),
      callbacks_(std::move(cb)),
      budget_(std::make_shared<transport::byte_budget>(settings_.limits.max_total_queue_bytes)),
      health_(std::make_shared<transport::local_health>(
          transport::local_health_settings::bounded_by(settings_.heartbeat.max_stretch))),
      ledger_(settings_.limits.max_pending_requests, settings_.limits.max_routed_requests),
      housekeeping_(executor) {
  events_.on_event = [this](const membership_event& e) { send_to_watchers(e); };
  housekeeping();
}

router::~router() {
  housekeeping_.cancel();
  for (auto& [ptr, c] : connections_) {
    c->link->detach();
    c->link->close(transport::close_reason::shutdown);
  }
}

connection& router::add_connection(connection_kind kind, transport::stream stream,
                                   std::string name) {
  transport::link_settings ls;
  ls.max_frame_size = std::min(limits::handshake_max_frame_size, settings_.limits.max_frame_size);
  ls.max_queue_bytes = settings_.limits.max_queue_bytes;
  ls.budget = budget_;
  ls.health = health_;
  ls.fair_share = true;
  ls.name = std::move(name);
  auto link = std::make_shared<transport::link>(std::move(stream), std::move(ls));
  auto owned = std::make_unique<connection>(*this, kind, std::move(link));
  connection& c = *owned;
  c.lane = ++next_lane_;
  connections_.emplace(&c, std::move(owned));
  return c;
}

void router::turn_away(transport::socket& socket, wire::refuse_code code, const std::string& why) {
  ++counters_.refused_connections;
  ++counters_.refusals_sent[static_cast<std::size_t>(code) % counters_.refusals_sent.size()];
  log_stranger(spdlog::level::warn, why + " (refused: " + wire::to_string(code) + ")");
  // A refuse with no text is 10 bytes, which an empty socket buffer always takes: one
  // non-blocking send, never a wait on a stranger.
  std::vector<std::byte> frame;
  wire::append_refuse(frame, {code, {}});
  [[maybe_unused]] const auto sent =
      ::send(socket.native_handle(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  std::error_code ignored;
  socket.close(ignored);
}

bool router::at_connection_limit() const noexcept {
  return connections_.size() >= settings_.limits.max_connections ||
         handshakes_ >= settings_.limits.max_handshakes;
}

void router::handshake_over(connection& c) noexcept {
  if (!std::exchange(c.handshaking, false)) return;
  --handshakes_;
}

void router::accept_tcp(transport::socket socket, const transport::remote_address& from) {
  if (shutting_down_) return;
  const std::string& remote = from.text;
  if (at_connection_limit())
    return turn_away(socket, wire::refuse_code::overloaded,
                     "host link from " + remote + ": too many connections (" +
                         std::to_string(connections_.size()) + " open, " +
                         std::to_string(handshakes_) + " in handshake)");
  // Without a secret nothing tells a host from a stranger: only this machine may link.
  if (!settings_.secret && !from.loopback && !settings_.allow_insecure)
    return turn_away(socket, wire::refuse_code::unauthorized,
                     "host link from " + remote +
                         ": no cluster secret is set, so only loopback peers may link "
                         "(set --secret-file, or --insecure)");
  transport::stream stream = settings_.tls ? transport::stream(std::move(socket), *settings_.tls,
                                                               transport::tls_role::server)
                                           : transport::stream(std::move(socket));
  connection& c = add_connection(connection_kind::inbound_tcp, std::move(stream),
                                 "inbound host link from " + remote);
  c.link->throttle_logs(stranger_log_);
  c.remote = remote;
  c.handshaking = true;
  ++handshakes_;
  if (from.loopback) {
    c.on_this_machine = true;
    forgive_cpu_wait_of(c, ::getpid());
  }
  c.start();
  c.link->expire_after(limits::handshake_timeout, transport::close_reason::handshake_timeout);
}

void router::accept_unix(transport::socket socket) {
  if (shutting_down_) return;
  if (at_connection_limit())
    return turn_away(socket, wire::refuse_code::overloaded,
                     "local socket client: too many connections");
  const pid_t pid = transport::local_peer_pid(socket.native_handle());
  connection& c = add_connection(connection_kind::inbound_unix,
                                 transport::stream(std::move(socket)), "local socket client");
  c.trusted = true;  // the host checked it is this user's (or root's)
  c.handshaking = true;
  ++handshakes_;
  // An attached node is a process of this machine, as a worker is: its waits for a core explain
  // its silences (protocol.md §8.1).
  if (pid > 0) forgive_cpu_wait_of(c, pid);
  c.start();
  c.link->expire_after(limits::handshake_timeout, transport::close_reason::handshake_timeout);
}

void router::adopt_worker(int channel_fd, pid_t pid, std::uint32_t slot,
                          std::unique_ptr<transport::shm_channel> rings) {
  transport::socket socket(executor_, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM),
                           channel_fd);
  connection& c = add_connection(connection_kind::worker,
                                 rings ? transport::stream(std::move(socket), std::move(rings))
                                       : transport::stream(std::move(socket)),
                                 "worker pid " + std::to_string(pid));
  ++counters_.workers_adopted;
  c.pid = pid;
  c.spawned = true;
  c.slot = slot;
  c.trusted = true;
  forgive_cpu_wait_of(c, pid);
  c.start();
  c.link->expire_after(limits::handshake_timeout, transport::close_reason::handshake_timeout);
}

void router::forgive_cpu_wait_of(connection& c, pid_t pid, pid_t also) {
  if (!callbacks_.cpu_wait) return;
  auto first = callbacks_.cpu_wait(pid);
  if (also <= 0 || also == pid) return c.link->forgive_peer_cpu_wait(std::move(first));
  // Either process waiting explains the silence: the two waits, summed (the link bounds what it
  // forgives). One that is gone adds nothing.
  c.link->forgive_peer_cpu_wait(
      [first = std::move(first),
       second = callbacks_.cpu_wait(also)]() -> std::optional<std::chrono::nanoseconds> {
        const auto a = first();
        const auto b = second();
        if (!a && !b) return std::nullopt;
        return a.value_or(std::chrono::nanoseconds{0}) + b.value_or(std::chrono::nanoseconds{0});
      });
}

bool router::tell_stopping(pid_t pid, std::chrono::milliseconds grace) {
  for (auto& [ptr, c] : connections_) {
    if (c->kind != connection_kind::local_node || !c->spawned || c->pid != pid) continue;
    if (!c->link->writable() || !make_room(*c, wire::header_size + 4)) return false;
    if (!std::exchange(c->told_stopping, true)) {
      std::vector<std::byte> frame;
      wire::append_stopping(frame,
                            static_cast<std::uint32_t>(std::clamp<std::int64_t>(
                                grace.count(), 0, std::numeric_limits<std::uint32_t>::max())));
      // Ahead of queued data: the grace runs from now.
      c->link->enqueue_control(frame);
    }
    return true;
  }
  return false;
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
      if (c.step == handshake_step::awaiting_proof &&
          frame.header.type == wire::frame_type::auth_proof)
        return on_auth_proof(c, frame);
      if (c.step == handshake_step::awaiting_hello && frame.header.type == wire::frame_type::hello)
        return on_hello(c, frame);
      log_stranger(spdlog::level::warn, c.link->name() + ": unexpected " +
                                            wire::to_string(frame.header.type) +
                                            " in the handshake");
      return c.link->close(transport::close_reason::protocol_error);
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
      if (frame.header.type == wire::frame_type::watch_request) {
        c.watching = true;
        // Said once the watch is on: the observer knows nothing it is told of from now on can
        // have happened before (and which event was the last one it missed).
        const std::string json = watching_text();
        return send_control(
            c, [&](std::vector<std::byte>& out) { wire::append_watch_event(out, json); });
      }
      if (frame.header.type == wire::frame_type::status_request) {
        // Like any frame, an answer must fit the queue: an observer that asks and never reads
        // is a slow consumer, not a way to grow this process.
        const std::string& json = status_text();
        return send_control(
            c, [&](std::vector<std::byte>& out) { wire::append_status_reply(out, json); });
      }
      spdlog::warn("{}: observer sent {}", c.link->name(), wire::to_string(frame.header.type));
      return c.link->close(transport::close_reason::protocol_error);
    case connection_kind::peer:
      if (!c.established) return on_dial_answer(c, frame);
      return on_peer_frame(c, frame);
  }
}

void router::refused_local_peer(const std::string& why) {
  ++counters_.refused_connections;
  log_stranger(spdlog::level::warn, "unix connection refused: " + why);
}

void router::log_stranger(spdlog::level::level_enum level, const std::string& line) {
  std::uint64_t suppressed = 0;
  if (!stranger_log_->allow(std::chrono::steady_clock::now(), suppressed)) return;
  spdlog::log(level, "{}{}", line,
              suppressed
                  ? fmt::format(" ({} more such lines about strangers not shown)", suppressed)
                  : std::string());
}

void router::on_closed(connection& c, transport::close_reason reason, std::error_code) {
  const auto kind = c.kind == connection_kind::peer || c.kind == connection_kind::inbound_tcp
                        ? closed_kind::host
                    : c.kind == connection_kind::local_node || c.kind == connection_kind::worker
                        ? closed_kind::node
                        : closed_kind::client;
  auto& closed = counters_.closed[static_cast<std::size_t>(kind)];
  ++closed[static_cast<std::size_t>(reason) % closed.size()];
  handshake_over(c);
  release_held_back(c);
  if (c.kind == connection_kind::local_node) {
    leave_reason why = leave_reason::disconnected;
    int detail = 0;
    if (c.said_goodbye) {
      why = leave_reason::graceful;
    } else if (reason == transport::close_reason::heartbeat_timeout) {
      // Silent (stopped, or stuck in a handler): it leaves now, and the host ends a worker of
      // ours so that it can never come back as a node nobody knows (and starts another).
      why = leave_reason::link_lost;
      if (c.spawned && callbacks_.silent_worker && callbacks_.silent_worker(c.pid))
        ++counters_.silent_workers_killed;
    } else if (reason == transport::close_reason::protocol_error ||
               reason == transport::close_reason::internal_error) {
      why = leave_reason::protocol_error;
    } else if (reason == transport::close_reason::overloaded ||
               reason == transport::close_reason::write_stall) {
      why = leave_reason::overloaded;
    } else if (c.spawned) {
      why = leave_reason::exited;
      detail = -1;
      if (callbacks_.worker_closed) {
        const pid_t pid = c.pid;
        awaiting_exit_[pid] = &c;
        callbacks_.worker_closed(pid, [this, alive = std::weak_ptr<int>(alive_), pid](int status) {
          if (alive.lock()) finish_worker_leave(pid, status);
        });
        // Settled at once: finish_worker_leave has removed `c`.
        if (!awaiting_exit_.contains(pid)) return;
        // Until it is settled the route stays, and requests to it are answered node_left; a
        // router shutting down does not wait.
        if (!shutting_down_) return;
        awaiting_exit_.erase(pid);
      }
    }
    local_node_left(c, why, detail);
  } else if (c.kind == connection_kind::peer) {
    peer_lost(c, reason);
  } else if (c.step == handshake_step::awaiting_displacement) {
    if (auto it = displacing_.find(c.peer); it != displacing_.end() && it->second == &c)
      displacing_.erase(it);
  }
  remove_connection(c);
}

void router::remove_connection(connection& c) {
  connections_.erase(&c);
  maybe_finish_shutdown();
}

// ---- housekeeping ---------------------------------------------------------------------------

void router::housekeeping() {
  const auto now = std::chrono::steady_clock::now();
  ledger_.expire(now);
  // A peer that stopped reading keeps our queue for it full however alive its heartbeats say it
  // is: past write_stall it goes, with its nodes (senders learn it from nodeLeft). Not a local
  // node whose queue is within its flow budget: its senders' credit is what holds them, it costs
  // no more than that, and it may be stopped on purpose (a debugger); whether it lives is for
  // its heartbeats to say.
  const std::size_t flow_budget = settings_.limits.max_queue_bytes / 2;
  std::vector<connection*> stalled;
  for (auto& [ptr, c] : connections_)
    if (c->link->writable() && c->link->write_stalled_for(now) > settings_.limits.write_stall &&
        !(c->kind == connection_kind::local_node && c->link->queued_bytes() <= flow_budget))
      stalled.push_back(ptr);
  for (connection* c : stalled) {
    ++counters_.slow_consumers;
    spdlog::warn("{}: read nothing of {} queued bytes for {} ms: closing", c->link->name(),
                 c->link->queued_bytes(), settings_.limits.write_stall.count());
    c->link->close(transport::close_reason::write_stall);
  }
  // Holding a host link back stalls every node behind it: a receiver may do so for max_hold, no
  // longer. Its departure releases the link.
  std::vector<connection*> holding;
  for (auto& [ptr, c] : connections_)
    if (c->link->writable() && c->holding_host_link_since &&
        now - *c->holding_host_link_since > settings_.limits.max_hold)
      holding.push_back(ptr);
  for (connection* c : holding) {
    ++counters_.slow_consumers;
    spdlog::warn("{}: held a host link back for more than {} ms ({} bytes queued): closing",
                 c->link->name(), settings_.limits.max_hold.count(), c->link->queued_bytes());
    c->link->close(transport::close_reason::overloaded);
  }
  if (shutting_down_) return;
  housekeeping_.expires_after(housekeeping_interval);
  housekeeping_.async_wait([this](std::error_code ec) {
    if (!ec) housekeeping();
  });
}

// ---- local nodes ----------------------------------------------------------------------------

// Hosts first (so that every node's host is known before the node), then every node.
void router::send_cluster_snapshot(connection& c) {
  std::vector<wire::host_entry> hosts{{settings_.self, settings_.address}};
  for (const auto& [id, peer] : peers_) hosts.push_back({id, peer->peer_address});
  wire::append_hosts_up(c.link->outbound(), hosts, true);

  append_node_snapshot(c, [](const route&) { return true; });
  // Every node's groups: the node is ready once this snapshot is complete (protocol.md §5.1).
  append_group_snapshot(c, [](const route&) { return true; });
  c.link->flush();
}

void router::append_node_snapshot(connection& to,
                                  const std::function<bool(const route&)>& include) {
  std::vector<wire::node_entry> nodes;
  routes_.for_each([&](const node_id& id, const route& r) {
    if (!include(r)) return;
    nodes.push_back({id, r.host, r.pid, r.slot});
    if (nodes.size() == membership_chunk) {
      wire::append_nodes_up(to.link->outbound(), nodes, false);
      nodes.clear();
    }
  });
  wire::append_nodes_up(to.link->outbound(), nodes, true);
}

void router::vacate_slot(std::uint32_t slot) {
  for (auto& [ptr, c] : connections_) {
    if (c->kind != connection_kind::local_node || !c->spawned || c->slot != slot ||
        !routes_.find(c->node))
      continue;
    // The supervisor starts a slot's next worker only once the last one is reaped: its channel is
    // held open by something else (a child it left behind), and it is gone.
    // The host names the exit it has reaped at once; should it answer later, the leave has
    // gone out already, with the status unknown (it must precede the replacement's join).
    auto status = std::make_shared<int>(-1);
    if (callbacks_.worker_closed)
      callbacks_.worker_closed(c->pid, [status](int wait_status) { *status = wait_status; });
    spdlog::warn("{}: its process has exited, its slot {} has a new worker: announcing it gone",
                 c->link->name(), slot);
    local_node_left(*c, leave_reason::exited, *status);
    c->link->close(transport::close_reason::local);
  }
}

void router::local_node_left(connection& c, leave_reason reason, int detail) {
  if (!routes_.remove(c.node)) return;
  drop_groups(c.node);
  spdlog::info("node {} left: {}", c.node.to_string(), galaxies::to_string(reason));
  nodes_gone({c.node});
  announce_nodes_down({{c.node, reason, detail}}, c, true);
}

// ---- announcements --------------------------------------------------------------------------

void router::announce_nodes_up(const std::vector<wire::node_entry>& nodes, const connection* except,
                               bool to_peers) {
  if (nodes.empty()) return;
  for (const auto& n : nodes) events_.node_joined(n.node, n.host, n.pid, n.slot);
  auto append = [&](std::vector<std::byte>& out) { wire::append_nodes_up(out, nodes, false); };
  for_each_local_node(except, [&](connection& c) { send_control(c, append); });
  if (!to_peers) return;
  for (auto& [id, peer] : peers_) send_control(*peer, append);
}

void router::announce_nodes_down(const std::vector<wire::node_down_entry>& nodes,
                                 const connection& via, bool to_peers) {
  if (nodes.empty()) return;
  for (const auto& n : nodes) events_.node_left(n.node, n.reason, n.detail);
  auto append = [&](std::vector<std::byte>& out) { wire::append_nodes_down(out, nodes); };
  auto announce = [&](connection& c) {
    c.link->merge_into_ordered(via.lane);
    send_control(c, append);
  };
  for_each_local_node(&via, announce);
  if (!to_peers) return;
  for (auto& [id, peer] : peers_) announce(*peer);
}

void router::announce_host_up(const connection& peer) {
  events_.host_joined(peer.peer);
  const std::vector<wire::host_entry> hosts{{peer.peer, peer.peer_address}};
  for_each_local_node(nullptr, [&](connection& c) {
    send_control(c, [&](std::vector<std::byte>& out) { wire::append_hosts_up(out, hosts, false); });
  });
}

void router::announce_host_down(const connection& peer, leave_reason reason) {
  events_.host_left(peer.peer, reason);
  const std::vector<wire::host_down_entry> hosts{{peer.peer, reason}};
  for_each_local_node(nullptr, [&](connection& c) {
    c.link->merge_into_ordered(peer.lane);
    send_control(c, [&](std::vector<std::byte>& out) { wire::append_hosts_down(out, hosts); });
  });
}

// ---- shutdown -------------------------------------------------------------------------------

void router::shutdown(std::chrono::milliseconds within, std::function<void()> done) {
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  housekeeping_.cancel();
  for (auto& [id, w] : wanted_)
    if (w.redial) w.redial->cancel();
  wanted_.clear();
  dial_queue_.clear();
  for (auto& [ptr, c] : connections_) {
    if (!c->link->writable()) continue;  // already closing (a worker awaiting its reap)
    if (c->kind == connection_kind::peer && c->established) {
      c->peer_leave_reason = leave_reason::graceful;
      wire::append_goodbye(c->link->final_outbound(), leave_reason::graceful);
      c->link->close_after_flush(transport::close_reason::shutdown, within);
    } else if (c->kind == connection_kind::local_node || c->kind == connection_kind::observer) {
      wire::append_goodbye(c->link->final_outbound(), leave_reason::graceful);
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
