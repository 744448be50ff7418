// One connection the master holds: a local node's session, an observer, or a link to another host.
// It owns the transport link and hands its frames and its end to the router.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "galaxies/error.hpp"
#include "galaxies/ids.hpp"
#include "transport/frame_sink.hpp"
#include "transport/link.hpp"

namespace galaxies::router {

class router;

enum class connection_kind {
  inbound_tcp,   // accepted on TCP, before its hello: must become a peer
  inbound_unix,  // accepted on the Unix socket, before its hello: node or observer
  worker,        // a spawned worker's channel, before or after its hello
  local_node,    // a registered local node (worker or attached)
  observer,      // the CLI asking for status
  peer,          // a link to another host (dialled or accepted)
};

class connection final : public transport::frame_sink {
 public:
  connection(router& owner, connection_kind kind, std::shared_ptr<transport::link> link)
      : kind(kind), link(std::move(link)), owner_(owner) {}

  void start() { link->start(this); }

  void on_frame(const wire::frame_view& frame) override;
  void on_closed(transport::close_reason reason, std::error_code error) override;

  connection_kind kind;
  std::shared_ptr<transport::link> link;
  bool established = false;

  // Local nodes.
  node_id node;
  pid_t pid = 0;
  bool spawned = false;  // one of our workers (its exit status names the reason it left)
  bool said_goodbye = false;
  std::optional<std::uint32_t> heartbeat_ms;  // what the other side advertised in its handshake

  // Peers.
  host_id peer;
  std::string peer_address;
  std::string peer_hostname;
  bool dialled_by_us = false;
  leave_reason peer_leave_reason = leave_reason::host_left;
  bool said_goodbye_peer = false;
  bool redial = true;  // false after wrong_target or duplicate_link: no point dialling again

 private:
  router& owner_;
};

}  // namespace galaxies::router
