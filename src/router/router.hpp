// The master's routing core: local node sessions, links to other hosts, the route table, and the
// membership announcements that make the event contract hold (docs/protocol.md §5, §6).
// It knows no registry backend and no process management: the host feeds it peers and channels.
// Threading: lives on one executor; every member and callback runs there.
#pragma once

#include <sys/types.h>

#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/backoff.hpp"
#include "base/limits.hpp"
#include "galaxies/options.hpp"
#include "router/connection.hpp"
#include "router/route_table.hpp"
#include "wire/control.hpp"

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
  std::uint64_t forwarded = 0;         // message frames handed to a connection
  std::uint64_t dropped = 0;           // undeliverable sends, broadcasts and replies
  std::uint64_t refused_requests = 0;  // requests we answered no_such_node / overloaded
};

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
  };
  struct callbacks {
    // A dial was refused with wrong_target: the registry row for (id, address) is stale.
    std::function<void(const host_id&, const std::string& address)> stale_peer;
  };

  router(const asio::any_io_executor& executor, settings s, callbacks cb);
  ~router();
  router(const router&) = delete;
  router& operator=(const router&) = delete;

  void accept_tcp(transport::socket socket);
  void accept_unix(transport::socket socket);
  void adopt_worker(int channel_fd, pid_t pid);
  void worker_exited(pid_t pid, int wait_status);

  // The registry's current view (this host excluded). Dials every peer it has no link to.
  void set_peers(const std::vector<peer_row>& peers);

  // Stops: refuses new connections, says goodbye to peers and local nodes, closes everything;
  // `done` runs once every connection is closed (or after `within`).
  void shutdown(std::chrono::milliseconds within, std::function<void()> done);

  nlohmann::json status() const;
  const router_counters& counters() const noexcept { return counters_; }
  std::size_t peer_count() const noexcept { return peers_.size(); }

  // From connection.
  void on_frame(connection& c, const wire::frame_view& frame);
  void on_closed(connection& c, transport::close_reason reason, std::error_code error);

 private:
  connection& add_connection(connection_kind kind, transport::socket socket, std::string name);
  void remove_connection(connection& c);
  void maybe_finish_shutdown();

  // Handshakes.
  void on_hello(connection& c, const wire::frame_view& frame);
  void accept_node(connection& c, const wire::hello& h);
  void accept_observer(connection& c);
  void accept_peer(connection& c, const wire::hello& h);
  void refuse(connection& c, wire::refuse_code code, std::string text);
  void on_dial_answer(connection& c, const wire::frame_view& frame);
  wire::welcome make_welcome() const;
  // Heartbeats run only when both sides advertised an interval; each sends at the smaller one.
  void enable_heartbeats(connection& c);

  // Local nodes.
  void on_local_frame(connection& c, const wire::frame_view& frame);
  void local_node_left(connection& c, leave_reason reason, int detail);
  void finish_worker_leave(pid_t pid, int wait_status);
  void send_cluster_snapshot(connection& c);
  // Appends `nodes_up` frames for the routes `include` selects, in chunks, the last one flagged
  // as completing the snapshot (protocol.md §5).
  void append_node_snapshot(connection& to, const std::function<bool(const route&)>& include);

  // Peers.
  void dial(const host_id& id, const std::string& address);
  void schedule_redial(const host_id& id);
  void abandon_dial(const host_id& id);
  void establish_peer(connection& c);
  void on_peer_frame(connection& c, const wire::frame_view& frame);
  void on_peer_nodes_up(connection& c, const wire::frame_view& frame);
  void on_peer_nodes_down(connection& c, const wire::frame_view& frame);
  void peer_lost(connection& c, transport::close_reason reason);
  // Takes an established link's nodes and host out of membership, announcing them gone.
  void retire_peer(connection& c, leave_reason why);

  // Forwarding.
  void forward(connection& from, const wire::frame_view& frame);
  void answer_request(connection& from, const wire::frame_view& request, errc status);

  // Announcements to local nodes / peers.
  void announce_nodes_up(const std::vector<wire::node_entry>& nodes, const connection* except,
                         bool to_peers);
  void announce_nodes_down(const std::vector<wire::node_down_entry>& nodes,
                           const connection* except, bool to_peers);
  void announce_host_up(const connection& peer);
  void announce_host_down(const host_id& host, leave_reason reason);
  template <class Fn>
  void for_each_local_node(const connection* except, Fn&& fn);

  struct wanted_peer {
    std::string address;
    base::backoff retry{std::chrono::milliseconds(50), limits::redial_backoff_max};
    std::unique_ptr<asio::steady_timer> redial;  // set while a redial is scheduled
    bool stale = false;  // refused with wrong_target: not redialled until the row changes
  };

  asio::any_io_executor executor_;
  settings settings_;
  callbacks callbacks_;
  router_counters counters_;

  std::unordered_map<connection*, std::unique_ptr<connection>> connections_;
  route_table routes_;
  std::unordered_map<host_id, connection*> peers_;  // established links, by peer
  struct dial_attempt {
    std::uint64_t seq = 0;
    connection* conn = nullptr;                     // once TCP connected: awaiting welcome
    std::shared_ptr<asio::ip::tcp::socket> socket;  // while the TCP connect is in progress
  };
  std::unordered_map<host_id, dial_attempt> dialling_;  // our dials not yet answered
  std::uint64_t dial_seq_ = 0;
  std::unordered_map<host_id, wanted_peer> wanted_;  // the registry's view
  std::unordered_map<pid_t, int> exit_statuses_;     // reaped workers whose channel is still open
  std::unordered_map<pid_t, connection*> awaiting_exit_;  // closed channels waiting for the reap

  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;
  std::unique_ptr<asio::steady_timer> shutdown_timer_;
};

}  // namespace galaxies::router
