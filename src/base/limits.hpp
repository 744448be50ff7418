// Every limit of the protocol and runtime, in one place (docs/protocol.md §9).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace galaxies::limits {

inline constexpr std::uint32_t default_max_frame_size = 16u << 20;
inline constexpr std::uint32_t min_max_frame_size = 4096;
// Until a connection's handshake completes, no frame may be larger than this (a hello is < 1 KiB):
// a stranger cannot make the master reserve a large buffer by announcing a large frame.
inline constexpr std::uint32_t handshake_max_frame_size = 64 * 1024;
inline constexpr std::size_t max_command_size = 255;
// Worker slots per host (docs/protocol.md §5): a master with more workers does not start, and a
// slot a peer announces at or above it is malformed. The default max_nodes_per_host: its peers
// would not take more nodes from one host anyway.
inline constexpr std::uint32_t max_workers_per_host = 4096;
// A sender grows a send_batch (docs/protocol.md §4.2) to this at most: one fair-share turn of a
// master's link (transport::link_settings::fair_quantum), so a batch never waits for turns to add
// up.
inline constexpr std::size_t max_batch_bytes = 16 * 1024;
// End-to-end flow control (docs/protocol.md §4.1): the smallest window a handshake may name, and
// the defaults. Every pair starts with flow_window; a receiver grows a blocked sender's window by
// doubling, up to a quarter of its flow budget, while the sum of its windows stays within it.
inline constexpr std::uint32_t min_flow_window = 4096;
inline constexpr std::uint32_t default_flow_window = 256 * 1024;
inline constexpr std::size_t default_max_pending_requests = 65536;
inline constexpr std::size_t default_max_queue_bytes = 64u << 20;
inline constexpr std::uint32_t max_membership_entries = 1u << 20;
inline constexpr std::size_t max_cluster_name = 64;
// A group's name (docs/protocol.md §5.1): one byte of length on the wire, and short enough that a
// node's 256 groups cost a master 20 KiB at most.
inline constexpr std::size_t max_group_name = 64;
// Membership events a master keeps for its status and web view (the newest; older ones are in the
// masters' logs): a few minutes of churn in a large cluster, ~50 KiB of JSON.
inline constexpr std::size_t membership_events_kept = 256;
// A host link measures its round trip (protocol.md §8.2) this often when idle (a probe then
// replaces a heartbeat), twice as seldom when busy: the figure metrics show. Seldom, because each
// probe makes its peer write a segment it would not have written: under 5 % loss, links probing
// beside every heartbeat (1 s) and then every 2 s saw heartbeat timeouts the suite had not seen
// before (network_fault_test, 2 runs of 5); whether probes caused them is not established.
inline constexpr std::chrono::milliseconds probe_interval{10000};
// Text a peer sends about itself, bounded where it is decoded (and then valid UTF-8 without
// control characters): a hostname (255, as POSIX allows) and an "ip:port" (an IPv6 one with
// brackets takes at most 47 bytes).
inline constexpr std::size_t max_hostname_size = 255;
inline constexpr std::size_t max_address_size = 64;
inline constexpr std::size_t max_refuse_text = 256;
inline constexpr std::chrono::milliseconds handshake_timeout{5000};
// A master whose registry has neither registered it nor failed by then gives up with an error.
// Backends bound their own attempts well inside it (connect and request timeouts).
inline constexpr std::chrono::milliseconds registry_startup_timeout{10000};
// A registry backend gives up on one request to its store after this long.
inline constexpr std::chrono::milliseconds registry_request_timeout{3000};
// A dial whose TCP connect has not completed by then is abandoned and retried: SYNs lost in a
// partition are otherwise retried by the kernel only after 1, 3, 7 s, which would delay the
// reunion of healed hosts by seconds.
inline constexpr std::chrono::milliseconds dial_connect_timeout{1000};
// Redials of a lost peer back off exponentially from 50 ms up to this (±25% jitter), while its
// registry row lives. With dial_connect_timeout, a healed partition is bridged within 1.7 s at
// worst (a connect that was lost in the partition, given up, then the longest backoff).
inline constexpr std::chrono::milliseconds redial_backoff_max{500};
// How long a master holds a hello that claims the identity of a host it is linked to, while it
// checks that the old link is really gone (docs/protocol.md §6), when that link has no heartbeat
// to bound the check by.
inline constexpr std::chrono::milliseconds displacement_check_max{5000};
// Accept errors (EMFILE, ENFILE: out of descriptors) pause accepting with backoff up to this long,
// and are logged at most once per accept_error_log_interval with a count of the rest.
inline constexpr std::chrono::milliseconds accept_backoff_max{1000};
inline constexpr std::chrono::milliseconds accept_error_log_interval{10000};
// A Unix socket path must fit sockaddr_un::sun_path (108 bytes with the NUL).
inline constexpr std::size_t max_unix_path = 107;

// Registry rows come from a store others can write (a shared file, etcd, Redis): every field is
// bounded and checked before a row is used (registry/row_checks.hpp); a bad row is skipped.
// POSIX's HOST_NAME_MAX is 64 and DNS names stop at 253; 255 leaves room for both.
inline constexpr std::size_t max_hostname = 255;
// "[" + the longest IPv6 text (45, with an embedded IPv4) + "]:65535" is 53 bytes.
inline constexpr std::size_t max_registry_address = 64;
// One row's JSON, as an etcd or Redis value: the fields' bounds above make a real row < 1 KiB.
inline constexpr std::size_t max_registry_row_size = 4096;
// A view carries at most this many hosts (ourselves and the others first in id order): a store
// holding 100 000 rows must not make a master dial, or keep, all of them.
inline constexpr std::size_t max_registry_hosts = 1024;
// A skipped row is logged at most once per row per interval: a bad row stays bad on every read.
inline constexpr std::chrono::milliseconds registry_warning_interval{60000};
// The file registry reads what changed in its directory on the machine-wide grid of this step
// (base/clock_grid.hpp), not at each change: 64 masters refreshing every 1.7 s would otherwise wake
// every other master 38 times a second. A change is seen this much later at most. The default
// heartbeat interval: the reads fall on the instants a master wakes for its heartbeats anyway.
inline constexpr std::chrono::milliseconds registry_watch_grain{250};
// The file registry's directory holds one file per host. A scan examines at most this many
// entries and a registry remembers at most this many row files: room for every host a view can
// carry plus crashed hosts' files awaiting garbage collection, while a directory flooded by a
// hostile writer costs a bounded scan.
inline constexpr std::size_t max_registry_files = 4 * max_registry_hosts;
// A file registry row expired for this long (or 10 row TTLs, if longer) is garbage: any master
// may remove its file, so that crashed hosts' files do not pile up. Generous, because an owner
// stalled that long (SIGSTOP, a debugger) comes back and must find nothing surprising: it simply
// writes its row again.
inline constexpr std::chrono::milliseconds registry_garbage_grace{60000};

// Local health (docs/protocol.md §8.1): a process whose own event loop runs late (its timers fire
// late: descheduled on a saturated machine, stopped, a long handler) cannot tell a silent peer
// from its own slowness, and on one machine its peers are likely as late as it is. Lateness of a
// heartbeat tick up to local_health_tolerance is ordinary scheduling jitter and counts as none;
// beyond it, every silence limit is stretched by local_health_stretch_factor times the recent
// lateness (the worst tick, halving every local_health_half_life), to at most
// local_health_max_multiplier times the configured limit, so a really dead peer is still found.
inline constexpr std::chrono::milliseconds local_health_tolerance{50};
inline constexpr int local_health_stretch_factor = 3;
inline constexpr int local_health_max_multiplier = 8;
inline constexpr std::chrono::milliseconds local_health_half_life{2000};
// What a peer of this machine is forgiven for the time the kernel shows it waiting for a core
// (process::cpu_wait_meter) is bounded this many times further. Such a peer's exit is seen at
// once (EOF), and a hung one waits for no core: the bound only guards against a pid taken for
// the wrong process. On 2 cores with 576 processes starting, masters sat runnable without running
// for 11 to 13 s, past the 12 s of the plain bound, and their peers closed on them
// (bench/RESULTS.md, eighteenth session). 5 x 8 x 1.5 s: 60 s at the defaults.
inline constexpr int local_health_cpu_wait_factor = 5;
// Loss awareness (docs/protocol.md §8.3, transport/path_loss.hpp): a host link's silence is given
// up to path_loss_multiplier x its limit while the peer's kernel answers and the connection
// received segments out of order within path_loss_memory (a lost segment's successors arrive
// at once, so one that stalls a silence is seen by its verdict's sample). TCP's backoff keeps a
// segment lost 3 times in a row back 1.4 s, 4 times 3 s, 5 times 6.2 s: 4.5 s at the defaults
// covers four, and at 5 % loss a lost segment is lost 4 more times 1 in 160 000. The counters are
// read every path_sample_interval (a getsockopt per link), and at each verdict.
inline constexpr int path_loss_multiplier = 3;
inline constexpr std::chrono::milliseconds path_loss_memory{10000};
inline constexpr std::chrono::milliseconds path_sample_interval{5000};
// A stretched verdict is logged at most once per interval per process, with a count of the rest.
inline constexpr std::chrono::milliseconds local_health_log_interval{10000};

}  // namespace galaxies::limits
