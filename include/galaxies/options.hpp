// Options of a galaxies host (master) and of the nodes it runs. Plain data.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "galaxies/log.hpp"

namespace galaxies {

// Every cost a peer or a local client can put on a master, bounded (docs/security.md lists what
// happens past each). `galaxies host --limit NAME=VALUE` sets them by these names.
struct limits_options {
  std::uint32_t max_frame_size = 16u << 20;        // bytes of one frame, headers included
  std::size_t max_pending_requests = 65536;        // per node: its own requests awaiting a reply
  std::size_t max_queue_bytes = 64u << 20;         // outbound bytes queued per connection
  std::size_t max_total_queue_bytes = 512u << 20;  // outbound bytes queued by a master, in all
  std::size_t max_nodes_per_host = 4096;           // nodes one peer host may announce
  // Groups (docs/protocol.md §5.1): the groups one node may be in at a time (join() fails
  // overloaded past it, an announcement past it closes its connection), and the members a group
  // may have in a joiner's view (join() fails overloaded). The master tells its nodes both.
  std::size_t max_groups_per_node = 256;
  std::size_t max_group_members = 4096;
  std::size_t max_connections = 4096;        // a master's connections: nodes, observers, host links
  std::size_t max_handshakes = 64;           // of those, still in their handshake
  std::size_t max_dials = 8;                 // host links being dialled at once
  std::size_t max_routed_requests = 262144;  // requests a master tracks for reply matching
  std::chrono::milliseconds write_stall{10000};  // a peer that reads nothing for this long goes
  // A receiver that keeps a host link held back (not read, so every node behind it waits) this
  // long goes. Well below write_stall, so that the peer never sees our pause as a stalled link.
  std::chrono::milliseconds max_hold{2000};
  // The window every (sender, receiver) pair of nodes starts with (docs/protocol.md §4.1); the
  // same on every host of a cluster (a host link between different ones is refused). A node may
  // grant its senders max_queue_bytes / 2 in all: what its master's queue to it can hold
  // without ever holding a sender back.
  std::uint32_t flow_window = 256 * 1024;
  // A worker's channel to its master goes through two shared-memory rings of this many bytes (a
  // power of two), woken through pipes, its socket carrying only the end; 0: through the socket.
  std::size_t channel_ring_bytes = 512 * 1024;
};

// Failure detection on every host link and worker channel. A side that hears nothing for
// interval * misses declares the other gone (link_lost). The default detects a silent host in
// 1.5 s; the short interval keeps a lost heartbeat's TCP retransmission (200 ms minimum, linear
// for these thin streams) well inside that window, so 5% packet loss causes no false leave.
struct heartbeat_options {
  std::chrono::milliseconds interval{250};  // 0 disables heartbeats (then neither side expects any)
  int misses = 6;
  // Local health (docs/protocol.md §8.1): while this process's own loop runs late (a saturated
  // machine), a silent peer is given up to this many detection times before it is declared
  // gone; 1 turns the stretch off.
  int max_stretch = 8;

  std::chrono::milliseconds detection_time() const { return interval * misses; }
};

// What the master does when a worker exits without being asked to (a crash, a kill, an exit of its
// own): it starts a new one in the same slot after a backoff that doubles with each quick exit, up
// to max_backoff, and gives the slot up when its workers keep exiting (a crash loop), so that a
// broken build does not fork forever. A given-up slot stays empty (status: `given_up`); the other
// slots are untouched. run() throws std::invalid_argument for a combination that makes no sense.
struct restart_options {
  // false: an exited worker is never replaced; its slot stays empty (status: `given_up`).
  bool respawn = true;
  // The wait before the first restart after a healthy run; each quick exit doubles it. > 0.
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};  // the cap of that doubling; >= initial_backoff
  // A worker that ran this long before it exited was healthy: the backoff starts afresh. >= 0.
  std::chrono::milliseconds stable_after{5000};
  // The slot is given up when its workers exit more than max_restarts times within any
  // crash_window (the exit after the max_restarts-th restart in it); `unlimited`: never.
  static constexpr std::size_t unlimited = static_cast<std::size_t>(-1);
  std::size_t max_restarts = 4;
  std::chrono::milliseconds crash_window{10000};  // > 0
};

// How a master starts its workers (README, "Starting workers: exec or fork").
enum class worker_start : std::uint8_t {
  // The program again, from its file (execve): main() runs afresh in every worker, as Node's
  // cluster does.
  exec,
  // A copy of the master as it was when run() was called, forked by a server process the master
  // forks then: no exec, no dynamic loading, no static initialisers, about half of exec's CPU
  // per start (bench/RESULTS.md), and every worker runs the master's own version of the program.
  // What main() did before run() is not done again: a worker shares the files it opened and the
  // seeds it drew. run() falls back to exec, saying why, when other threads already run then.
  fork,
};

struct options {
  std::size_t workers = 2;             // worker processes this host runs
  std::string listen = "127.0.0.1:0";  // TCP address other masters dial; port 0 = any free
  std::string advertise;               // address written to the registry; empty = the bound one
  std::string registry;                // URL; empty = the embedded file registry's default
  std::string cluster = "galaxies";    // hosts of different clusters never link
  std::string unix_path;               // master's local socket; empty = a per-user default
  std::chrono::milliseconds registry_ttl{5000};
  std::chrono::milliseconds stop_grace{3000};  // SIGTERM→SIGKILL for workers on shutdown
  // After a burst of work, the master's and the workers' loops poll for more, up to this long and
  // only while traffic keeps coming that soon, before they sleep: a process woken from sleep
  // costs a CPU wake-up per hop (README, "Latency and CPU"). 0: sleep at once.
  std::chrono::microseconds busy_poll{100};
  limits_options limits;
  heartbeat_options heartbeat;
  restart_options restart;
  worker_start start = worker_start::exec;  // how the workers start
  // Who may link to this host (docs/security.md). Without a secret, host links are accepted from
  // loopback addresses only, unless allow_insecure says otherwise.
  std::string secret_file;  // the cluster secret (mode 0600); env GALAXIES_SECRET_FILE if empty
  std::string tls_cert;     // TLS 1.3 on host links when all three are set (PEM files)
  std::string tls_key;
  std::string tls_ca;
  bool allow_insecure = false;  // accept unauthenticated host links from any address
  // "ip:port" where the master serves /metrics (Prometheus), /status.json and its web view
  // (docs/operating.md); empty: none. Loopback only, unless allow_insecure.
  std::string http_listen;
  // Where the master and its workers log (README, "Logging"). An application that installed its
  // own spdlog default logger before run() keeps it: galaxies logs through it and changes nothing
  // of it (its sinks, format and level are the application's; the three options below are not
  // applied). Otherwise galaxies logs to log_sink if set, else on stderr.
  std::string log_level = "info";  // trace, debug, info, warn, error, critical or off
  // On stderr: "text" (one line a record, for people) or "json" (one object a line, for log
  // shippers: time, level, role, pid, msg). Anything else makes run() throw std::invalid_argument.
  std::string log_format = "text";
  // Every record (at or above log_level), for an application with a logging system of its own;
  // nothing goes to stderr then. Called from the thread that logs (the process's loop, or a
  // registry backend's own thread), never two calls at once; it must not block for long (the loop
  // waits for it) and should not throw (what it throws is reported on stderr, the record lost).
  std::function<void(const log_record&)> log_sink;
};

}  // namespace galaxies
