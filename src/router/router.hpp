// The master's routing core: local node sessions, links to other hosts, the route table, and the
// membership announcements that make the event contract hold (docs/protocol.md §5, §6). It trusts
// no peer beyond what that peer owns: every frame's source, every reply, every announcement and
// every byte of text is checked on the connection it came from (docs/security.md).
// It knows no registry backend and no process management: the host feeds it peers and channels.
// Threading: lives on one executor; every member and callback runs there.
#pragma once

#include <spdlog/common.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/backoff.hpp"
#include "base/limits.hpp"
#include "base/log_throttle.hpp"
#include "galaxies/options.hpp"
#include "router/connection.hpp"
#include "router/group_table.hpp"
#include "router/membership_log.hpp"
#include "router/request_ledger.hpp"
#include "router/route_table.hpp"
#include "transport/byte_budget.hpp"
#include "transport/connector.hpp"
#include "transport/local_health.hpp"
#include "transport/shm_channel.hpp"
#include "wire/control.hpp"
#include "wire/groups.hpp"

namespace galaxies::router {

// The first 8 hex digits of an id: enough to tell hosts and nodes apart in logs.
inline std::string short_id(const uuid& id) {
  return id.to_string().substr(0, 8);
}

struct peer_row {
  host_id id;
  std::string address;
};

struct router_counters {
  std::uint64_t forwarded = 0;            // message frames handed to a connection
  std::uint64_t dropped = 0;              // to a node that was leaving: its nodeLeft tells senders
  std::uint64_t refused_requests = 0;     // requests we answered no_such_node / overloaded
  std::uint64_t unmatched_replies = 0;    // replies to no request we forwarded (late or forged)
  std::uint64_t slow_consumers = 0;       // connections closed because they could not keep up
  std::uint64_t held_back = 0;            // senders paused until their receiver drained
  std::uint64_t refused_connections = 0;  // closed at once: limits, address policy
  std::uint64_t silent_workers_killed = 0;  // workers of ours ended for heartbeat timeout
  std::uint64_t silent_peers_lost = 0;      // host links closed for heartbeat timeout
  std::uint64_t workers_adopted = 0;        // workers spawned for us (respawns included)
  // Handshakes this master refused, and refusals its own dials met, by wire::refuse_code.
  std::array<std::uint64_t, 16> refusals_sent{};
  std::array<std::uint64_t, 16> refusals_received{};
  // Connections closed, by what they were (closed_kind) and by transport::close_reason.
  std::array<std::array<std::uint64_t, 16>, 3> closed{};
};

// What a closed connection was, for router_counters::closed: a host link (or a TCP connection
// that tried to become one), a local node's channel, or another local client (an observer).
enum class closed_kind : std::uint8_t { host = 0, node = 1, client = 2 };
const char* to_string(closed_kind kind) noexcept;

class router {
 public:
  struct settings {
    host_id self;
    std::string cluster;
    std::string address;  // advertised TCP address
    std::string hostname;
    std::string unix_path;  // for status
    std::string registry;   // for status
    limits_options limits;
    heartbeat_options heartbeat;
    // The cluster secret's bytes: every host link then proves it both ways (protocol.md §3.2).
    std::optional<std::string> secret;
    // TLS 1.3 on host links (both ends verified against the CA); null: plain TCP.
    std::shared_ptr<asio::ssl::context> tls;
    // Without a secret, host links are accepted from loopback addresses only, unless this is set.
    bool allow_insecure = false;
  };
  struct callbacks {
    // A dial was refused with wrong_target: the registry row for (id, address) is stale.
    std::function<void(const host_id&, const std::string& address)> stale_peer;
    // How host links are made; empty: transport::connect_tcp (the unit tests plug in socketpairs).
    std::function<void(const std::string& address, transport::connect_handler done)> connect;
    // Adds what the host knows to status() (its workers' slots, the registry, the process).
    std::function<void(nlohmann::json& status)> extend_status;
    // The worker `pid` (adopt_worker) went silent and has left (link_lost): its process must end,
    // so that it can never come back as a node nobody knows. True if a live process was ended
    // (counted in silent_workers_killed). Empty: nothing is done to it.
    std::function<bool(pid_t pid)> silent_worker;
    // The channel of worker `pid` closed without a goodbye: it leaves as `exited`, and `settle`
    // names how (the wait status, or -1: unknown) once its process is reaped or the host gives up
    // waiting. `settle` may run inside this call, or later from the executor; until it runs, the
    // node's route stays and requests to it are answered node_left. Empty: it leaves at once,
    // the status unknown.
    std::function<void(pid_t pid, std::function<void(int wait_status)> settle)> worker_closed;
    // A probe of how long process `pid` of this machine has waited for a core so far, a wait
    // still going on included (process::cpu_wait_probe); the probe's nullopt: unknown. A
    // worker's handshake deadline and silences forgive what the worker waits; those of a host
    // link to a peer on this machine, what this process waits (the peer shares its cores) and,
    // once linked, what the peer's master waits too (the pid of its handshake), within local
    // health's bound (protocol.md §8.1). Empty: nothing is forgiven.
    std::function<std::function<std::optional<std::chrono::nanoseconds>()>(pid_t pid)> cpu_wait;
  };

  router(const asio::any_io_executor& executor, settings s, callbacks cb);
  ~router();
  router(const router&) = delete;
  router& operator=(const router&) = delete;

  // A connection accepted on the TCP listener (a host dialling), or on the Unix socket (a local
  // node or observer, already checked to be this user's). The router may close it at once:
  // connection limits, or a stranger's address without a cluster secret.
  void accept_tcp(transport::socket socket, const transport::remote_address& from);
  void accept_unix(transport::socket socket);
  // A Unix connection the master closed unread (not this user's, transport::refuse_local_peer):
  // counted and logged, the log throttled like any line about strangers.
  void refused_local_peer(const std::string& why);
  // `rings`: the channel's shared-memory rings, or none (then the bytes go through the socket).
  // `pid` names the worker to the host's callbacks (silent_worker, worker_closed), in status and
  // logs (and cpu_wait); the router does nothing else with it. `slot`: the supervisor's slot
  // it fills
  // (< limits::max_workers_per_host), told in its welcome.
  void adopt_worker(int channel_fd, pid_t pid, std::uint32_t slot,
                    std::unique_ptr<transport::shm_channel> rings = {});
  // Tells the registered worker `pid` that this master stops, and that it has `grace` to leave
  // (protocol.md §5.2). False if no registered worker has that pid (still in its handshake, or
  // gone): it must be stopped some other way.
  bool tell_stopping(pid_t pid, std::chrono::milliseconds grace);

  // The registry's current view (this host excluded). Dials every peer it has no link to, at
  // most limits.max_dials at once.
  void set_peers(const std::vector<peer_row>& peers);

  // Stops: refuses new connections, says goodbye to peers and local nodes, closes everything;
  // `done` runs once every connection is closed (or after `within`).
  void shutdown(std::chrono::milliseconds within, std::function<void()> done);

  nlohmann::json status() const;
  nlohmann::json own_status() const;  // status() without what the host adds
  nlohmann::json groups_status() const;
  // status() as text, built once per turn of the loop, however many observers ask in it.
  const std::string& status_text();
  const router_counters& counters() const noexcept { return counters_; }
  const membership_log& events() const noexcept { return events_; }
  std::size_t peer_count() const noexcept { return peers_.size(); }
  std::size_t connection_count() const noexcept { return connections_.size(); }
  std::size_t queued_bytes() const noexcept { return budget_->used(); }

  // From connection.
  void on_frame(connection& c, const wire::frame_view& frame);
  void on_closed(connection& c, transport::close_reason reason, std::error_code error);
  // `c`'s queue drained (or it closed): the connections held back for it read again.
  void release_held_back(connection& c);

 private:
  connection& add_connection(connection_kind kind, transport::stream stream, std::string name);
  void remove_connection(connection& c);
  void maybe_finish_shutdown();
  // Closes a socket that gets no connection at all, after a best-effort refuse with only a code.
  void turn_away(transport::socket& socket, wire::refuse_code code, const std::string& why);
  // c's deadlines and silences forgive what process `pid` (and `also`, when given) waits for a
  // core (callbacks::cpu_wait).
  void forgive_cpu_wait_of(connection& c, pid_t pid, pid_t also = 0);
  bool at_connection_limit() const noexcept;
  void log_stranger(spdlog::level::level_enum level, const std::string& line);
  // The connection's handshake is over (established or refused): it no longer counts as one.
  void handshake_over(connection& c) noexcept;
  void housekeeping();

  // Handshakes (router_handshake.cpp).
  void on_hello(connection& c, const wire::frame_view& frame);
  void on_host_hello(connection& c, const wire::frame_view& frame, const wire::hello& h);
  void on_auth_proof(connection& c, const wire::frame_view& frame);
  void admit_host(connection& c);
  void accept_node(connection& c, const wire::hello& h);
  void accept_observer(connection& c);
  // Refuses with `code`; `why` goes to our log, and to the other side only if it is trusted.
  void refuse(connection& c, wire::refuse_code code, const std::string& why);
  wire::welcome make_welcome() const;
  // What this master says of itself in a hello or a welcome: both carry the same records.
  template <class Message>
  void describe_self(Message& m) const {
    m.pid = static_cast<std::uint32_t>(::getpid());
    m.cluster = settings_.cluster;
    m.listen = settings_.address;
    m.max_frame = settings_.limits.max_frame_size;
    if (settings_.heartbeat.interval.count() > 0) {
      m.heartbeat_ms = static_cast<std::uint32_t>(settings_.heartbeat.interval.count());
      // Tell us how late you run: a starved peer is not a dead one (§8.1), up to our stretch.
      m.lateness = static_cast<std::uint32_t>(std::max(settings_.heartbeat.max_stretch, 1));
    }
    m.hostname = settings_.hostname;
    m.flow_window = settings_.limits.flow_window;
    m.probes = 1;  // host links answer round-trip probes (§8.2); nodes ignore the record
  }
  // Why a peer's handshake cannot make a link with us (its flow window differs), or "".
  std::string flow_mismatch(const std::optional<std::uint32_t>& theirs) const;
  void send_host_welcome(connection& c);
  // Heartbeats run only when both sides advertised an interval; each sends at the smaller one.
  void enable_heartbeats(connection& c);

  // Local nodes.
  void on_local_frame(connection& c, const wire::frame_view& frame);
  void local_node_left(connection& c, leave_reason reason, int detail);
  // A worker registers in `slot`: the slot's former node, whose process has been reaped but whose
  // channel is not closed yet, is announced gone first (one live node per slot, protocol.md §5).
  void vacate_slot(std::uint32_t slot);
  void finish_worker_leave(pid_t pid, int wait_status);
  void send_cluster_snapshot(connection& c);
  // Appends `nodes_up` frames for the routes `include` selects, in chunks, the last one flagged
  // as completing the snapshot (protocol.md §5).
  void append_node_snapshot(connection& to, const std::function<bool(const route&)>& include);

  // Peers (router_peers.cpp).
  void dial(const host_id& id);
  void start_dial(const host_id& id, const std::string& address);
  void on_dial_connected(const host_id& id, const std::string& address, transport::socket socket);
  void end_dial(const host_id& id);
  void schedule_redial(const host_id& id);
  void abandon_dial(const host_id& id);
  void on_dial_answer(connection& c, const wire::frame_view& frame);
  void on_dial_refused(connection& c, const wire::frame_view& frame);
  void on_dial_welcome(connection& c, const wire::frame_view& frame);
  void accept_peer(connection& c);
  void complete_peer_accept(connection& c);
  void establish_peer(connection& c);
  void on_peer_frame(connection& c, const wire::frame_view& frame);
  void on_peer_nodes_up(connection& c, const wire::frame_view& frame);
  void on_peer_nodes_down(connection& c, const wire::frame_view& frame);
  void peer_lost(connection& c, transport::close_reason reason);
  // Takes an established link's nodes and host out of membership, announcing them gone.
  void retire_peer(connection& c, leave_reason why);
  void reject_peer(connection& c, const std::string& why);

  // Forwarding (router_forward.cpp).
  // A message frame's body is well formed; if not, `c` is closed (protocol error).
  bool body_is_valid(connection& c, const wire::frame_view& frame);
  void forward(connection& from, const wire::frame_view& frame);
  bool deliver(connection& from, connection& to, const wire::frame_view& frame);
  void forward_request(connection& from, connection& to, const wire::frame_view& frame);
  // A grant of credit from one node to another (protocol.md §4.1): routed like a message, ahead
  // of any data queued on the way.
  void forward_credit(connection& from, const wire::frame_view& frame);
  void answer_request(connection& from, const wire::frame_view& request, errc status);
  // Whether `to` can take `bytes` more: a connection past its own queue bound is closed as a slow
  // consumer (false); when the process-wide budget is what is spent, the connections holding the
  // most are closed until it fits.
  bool make_room(connection& to, std::size_t bytes);
  // `to` is past its high-water mark (half its queue bound): `from` reads nothing more until `to`
  // has drained to a quarter. A node sending faster than its receiver takes is slowed down instead
  // of losing messages (its own send() then meets a full channel: overloaded).
  void hold_back(connection& from, connection& to);
  void nodes_gone(const std::unordered_set<node_id>& gone);

  // Groups (router_groups.cpp, protocol.md §4.3, §5.1).
  // A node's own groups_up / groups_down, or a peer's for the nodes it announced.
  void on_groups_frame(connection& c, const wire::frame_view& frame);
  // To our local nodes (the joiner included) and, for our own nodes' changes, to our peers; in the
  // ordered lane like nodes_up / nodes_down (a leave after the leaver's frames queued via `via`).
  void announce_groups_up(const std::vector<wire::group_entry>& entries, bool to_peers);
  void announce_groups_down(const std::vector<wire::group_entry>& entries, const connection& via,
                            bool to_peers);
  // groups_up frames for the groups of the nodes `include` selects, the last flagged snapshot.
  void append_group_snapshot(connection& to, const std::function<bool(const route&)>& include);
  // A node left the cluster: its groups go with it (its nodes_down says so to everyone).
  void drop_groups(const node_id& node);
  // Checks a publish and hands a copy to each listed local node (dst = us) or the frame to the
  // host link it names; a peer may only send us frames for our own nodes.
  void forward_publish(connection& from, const wire::frame_view& frame);

  // Announcements to local nodes / peers, all in the ordered lane (transport/link.hpp): what comes
  // up goes ahead of any frame of it; before what goes down, the frames queued in the lane of
  // `via`, the connection its frames came by, join the ordered lane, so that the departure follows
  // its last frames and precedes any later return. Nothing goes back to `via`.
  void announce_nodes_up(const std::vector<wire::node_entry>& nodes, const connection* except,
                         bool to_peers);
  void announce_nodes_down(const std::vector<wire::node_down_entry>& nodes, const connection& via,
                           bool to_peers);
  void announce_host_up(const connection& peer);
  void announce_host_down(const connection& peer, leave_reason reason);
  template <class Fn>
  void for_each_local_node(const connection* except, Fn&& fn);
  // The frames `append` writes, queued for one connection in its ordered lane if make_room()
  // lets them in.
  template <class Append>
  void send_control(connection& to, Append&& append);
  std::vector<std::byte> scratch_;  // send_control's frames before they are queued
  std::uint64_t next_lane_ = 0;     // connection::lane of the newest connection

  struct wanted_peer {
    std::string address;
    base::backoff retry{std::chrono::milliseconds(50), limits::redial_backoff_max};
    std::unique_ptr<asio::steady_timer> redial;  // set while a redial is scheduled
    std::uint64_t links = 0;  // links made to it (each one after the first is a reconnect)
    bool stale = false;       // refused with wrong_target: not redialled until the row changes
    bool queued = false;      // waiting in dial_queue_ for a free dial slot
  };

  asio::any_io_executor executor_;
  settings settings_;
  callbacks callbacks_;
  router_counters counters_;
  membership_log events_{limits::membership_events_kept};
  void send_to_watchers(const membership_event& e);
  std::string watching_text() const;  // the first watch_event, {"event": "watching", ...}
  // status_text() of this turn; emptied by a handler posted when it is built.
  std::shared_ptr<std::string> status_text_ = std::make_shared<std::string>();
  std::shared_ptr<transport::byte_budget> budget_;
  std::shared_ptr<transport::local_health> health_;  // every link's judge of this loop's lateness

  std::unordered_map<connection*, std::unique_ptr<connection>> connections_;
  std::size_t handshakes_ = 0;  // connections with `handshaking` set
  route_table routes_;
  group_table groups_;  // every known node's groups, for the snapshots
  request_ledger ledger_;
  std::unordered_map<host_id, connection*> peers_;       // established links, by peer
  std::unordered_map<host_id, connection*> displacing_;  // held hellos claiming a linked host
  struct dial_attempt {
    std::uint64_t seq = 0;       // a connect completing for an older attempt is discarded
    connection* conn = nullptr;  // once connected: the handshake in progress
  };
  std::unordered_map<host_id, dial_attempt> dialling_;  // our dials not yet answered
  std::deque<host_id> dial_queue_;                      // waiting for one of max_dials slots
  std::uint64_t dial_seq_ = 0;
  std::unordered_map<host_id, wanted_peer> wanted_;       // the registry's view
  std::unordered_map<pid_t, connection*> awaiting_exit_;  // closed channels waiting for settle
  // Gone with the router: a worker_closed settle that comes later finds it expired.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);

  asio::steady_timer housekeeping_;
  // Lines about connections that have not proved who they are: a burst of 64, then one a second.
  std::shared_ptr<base::log_throttle> stranger_log_ =
      std::make_shared<base::log_throttle>(std::chrono::seconds(1), 64);

  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;
  std::unique_ptr<asio::steady_timer> shutdown_timer_;
};

// ---- templates used by several of the router's files -----------------------------------------

// `fn` may close connections (a slow consumer): a close only marks the link, the connection
// leaves connections_ later (on_closed is posted), so the walk is undisturbed.
template <class Fn>
void router::for_each_local_node(const connection* except, Fn&& fn) {
  for (auto& [ptr, c] : connections_)
    if (ptr != except && c->kind == connection_kind::local_node && c->link->writable()) fn(*c);
}

template <class Append>
void router::send_control(connection& to, Append&& append) {
  if (!to.link->writable()) return;
  scratch_.clear();
  append(scratch_);
  if (make_room(to, scratch_.size())) to.link->push(scratch_);
}

}  // namespace galaxies::router
