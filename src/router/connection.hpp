// One connection the master holds: a local node's session, an observer, or a link to another host.
// It owns the transport link and hands its frames and its end to the router.
#pragma once

#include <sys/types.h>

#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "galaxies/error.hpp"
#include "galaxies/ids.hpp"
#include "transport/frame_sink.hpp"
#include "transport/link.hpp"
#include "wire/control.hpp"

namespace galaxies::router {

class router;

enum class connection_kind {
  inbound_tcp,   // accepted on TCP, before its handshake completes: must become a peer
  inbound_unix,  // accepted on the Unix socket, before its hello: node or observer
  worker,        // a spawned worker's channel, before or after its hello
  local_node,    // a registered local node (worker or attached)
  observer,      // the CLI asking for status
  peer,          // a link to another host (dialled or accepted)
};

// Where a host link's handshake stands (docs/protocol.md §3).
enum class handshake_step {
  awaiting_hello,         // acceptor: nothing received yet
  awaiting_proof,         // acceptor: challenge sent, the dialler's auth_proof expected
  awaiting_displacement,  // acceptor: the hello claims a linked host; checking the old link
  awaiting_answer,        // dialler: hello sent; challenge, welcome or refuse expected
  awaiting_welcome,       // dialler: proof sent; welcome (with the acceptor's proof) expected
  done,
};

class connection final : public transport::frame_sink {
 public:
  connection(router& owner, connection_kind kind, std::shared_ptr<transport::link> link)
      : kind(kind), link(std::move(link)), owner_(owner) {}

  void start() { link->start(this); }

  void on_frame(const wire::frame_view& frame) override;
  void on_closed(transport::close_reason reason, std::error_code error) override;
  void on_drained() override;

  connection_kind kind;
  std::shared_ptr<transport::link> link;
  // The lane its frames take on every other connection's link (transport/fair_lanes.hpp): a
  // source never reused, so each sender gets its fair share and keeps its order.
  std::uint64_t lane = 0;
  bool established = false;
  // Frames the router queued on this connection (forwarded messages, requests, replies, grants),
  // and the times this connection's reading was paused for a receiver whose queue was full.
  std::uint64_t frames_out = 0;
  std::uint64_t stalls = 0;
  // Accepted and not yet through its handshake: counted against limits_options::max_handshakes.
  bool handshaking = false;
  // Whether it may hear why it was refused: local clients (same user) and authenticated hosts.
  // Strangers get a code only, never our cluster name or UUID.
  bool trusted = false;

  // Local nodes.
  node_id node;
  pid_t pid = 0;
  bool spawned = false;  // one of our workers (its exit status names the reason it left)
  std::uint32_t slot = wire::no_slot;  // a worker's: the supervisor's slot it was started in
  bool told_stopping = false;          // sent `stopping` (protocol.md §5.2)
  bool said_goodbye = false;
  std::optional<std::uint32_t> heartbeat_ms;  // what the other side advertised in its handshake
  // Its handshake's `lateness` record: nonzero asks for heartbeats with our lateness, and is its
  // max_stretch (§8.1).
  std::uint32_t lateness_record = 0;
  bool peer_probes = false;  // a host that answers round-trip probes (its `probes` record)

  // Observers: sent each membership event as it happens (watch_request).
  bool watching = false;

  // Peers.
  host_id peer;
  std::string peer_address;  // validated text (wire decoders): safe to print
  std::string peer_hostname;
  std::string remote;            // the TCP address it came from, for logs
  bool on_this_machine = false;  // a loopback link: the peer shares our cores
  pid_t peer_pid = 0;            // its master's pid as its handshake claims (on this machine)
  bool dialled_by_us = false;
  leave_reason peer_leave_reason = leave_reason::host_left;
  bool said_goodbye_peer = false;
  bool redial = true;  // false after wrong_target or duplicate_link: no point dialling again
  std::size_t announced_nodes = 0;                 // nodes of this peer now in the route table
  std::unordered_set<std::uint32_t> filled_slots;  // their slots: at most one node in each

  // Host-link handshake.
  handshake_step step = handshake_step::awaiting_hello;
  std::vector<std::byte> hello_frame;  // as sent (dialler) or received (acceptor): both proofs
  wire::hello hello;                   // acceptor: the decoded hello
  wire::auth_value challenge{};        // the acceptor's nonce
  bool authenticated = false;          // proved the cluster secret
  std::unique_ptr<asio::steady_timer> hold;  // awaiting_displacement: when to give up

  // Connections whose reading waits for this one's queue to drain (router::hold_back), and since
  // when a host link is among them (bounded by limits_options::max_hold).
  std::vector<std::shared_ptr<transport::link>> held_back;
  std::optional<std::chrono::steady_clock::time_point> holding_host_link_since;

 private:
  router& owner_;
};

}  // namespace galaxies::router
