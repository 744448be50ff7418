// The worker side of `chatter`, the fault tests' traffic application: once registered, it sends
// a sequence-numbered message to every other node it knows every few milliseconds (one counter
// per receiver, kept across that receiver's leave and return), makes echo requests with a short
// timeout, answers the echo requests of others, and writes one JSON line per event to its own
// file LOG_DIR/<node id>.jsonl (read by event_log_checker). Threading: the node's executor only.
//
// Lines: {"t_ms": CLOCK_MONOTONIC ms, "ev": NAME, ...fields}, with NAME one of
//   boot {me, pid, label}              the worker runs (first line)
//   started {me, host, pid, label}     registered with its master
//   nodeJoined {node, host, pid}       nodeLeft {node, host, reason, detail}
//   hostJoined {host, address}         hostLeft {host, reason}
//   send {to, seq}                     send_fail {to, error}
//   recv {from, seq}                   serve {from, id}  (answered an echo request of `from`)
//   request {id, to}                   request_end {id, to, outcome, echo}
//       outcome: "reply" or the error's name (timeout, node_left, ...); echo: the reply carried
//       this request's own payload
//   quiesce {nodes, hosts, sent}       stopped sending (the file LOG_DIR/quiesce exists): the
//       node's view (node.nodes(), node.hosts()) and the last seq sent to each node
//   idle {}                            quiesced and no request pending any more
//   disconnected {why}
// With groups on (chatter_settings::rooms > 0), also:
//   groupJoined {group, node}          groupLeft {group, node}   (the node's own included)
//   publish {group, seq}               publish_fail {group, error}
//   deliver {from, group, seq}         handled a message `from` published to `group`
//   join_fail {group, error}           node.join refused
// The worker joins "all" and "room<k>" (k = its slot index modulo rooms) before it registers and
// publishes to its room every send round, counting its publishes from 1 (`seq`). Each `send`
// payload also carries the number of publishes made before it (`pubs` in `recv`), so that the
// checker can see a publish and a send from one node overtake each other at one receiver.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "galaxies/node.hpp"

namespace galaxies::fault {

struct chatter_settings {
  std::filesystem::path log_dir;
  std::string label;  // the host's name in the test (a, b, c)
  std::chrono::milliseconds send_every{10};
  std::chrono::milliseconds request_every{50};
  std::chrono::milliseconds request_timeout{300};
  std::size_t max_pending_requests = 16;
  // Rooms to spread the workers over (0: no groups at all, the traffic of old).
  std::uint32_t rooms = 0;
};

// Sets up the handlers and callbacks of a worker; call from worker_main.
void install_chatter(node& n, const chatter_settings& settings);

}  // namespace galaxies::fault
