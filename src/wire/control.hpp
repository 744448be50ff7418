// Control frames: handshake, heartbeat, goodbye, membership, status (docs/protocol.md §3, §5).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "base/limits.hpp"
#include "galaxies/error.hpp"
#include "galaxies/ids.hpp"
#include "wire/frame.hpp"

namespace galaxies::wire {

// 3: worker slots, stopping (protocol.md §5); 2: send_batch (§4.2)
inline constexpr std::uint16_t protocol_version = 3;

enum class role : std::uint8_t { host = 1, worker = 2, attached = 3, observer = 4 };
const char* to_string(role r) noexcept;

enum class refuse_code : std::uint16_t {
  wrong_target = 1,
  wrong_cluster = 2,
  bad_version = 3,
  duplicate_link = 4,
  malformed = 5,
  shutting_down = 6,
  duplicate_node = 7,
  wrong_role = 8,
  unauthorized = 9,  // no or a wrong proof of the cluster secret, or no secret where one is needed
  overloaded = 10,   // too many connections (in handshake, or in total)
};
const char* to_string(refuse_code code) noexcept;

enum class record_tag : std::uint16_t {
  cluster = 1,
  listen = 2,
  max_frame = 3,
  heartbeat_ms = 4,
  hostname = 5,
  auth_nonce = 6,   // hello: the dialler's fresh nonce; present exactly when it holds a secret
  auth_proof = 7,   // welcome: the acceptor's proof; always the last record (protocol.md §3.2)
  flow_window = 8,  // the window every (sender, receiver) pair starts with (protocol.md §4.1)
  flow_budget = 9,  // welcome to a node: the bytes of windows it may grant in all
  lateness = 10,    // the sender reads the lateness its peer's heartbeats carry (protocol.md §8.1)
  probes = 11,      // the sender answers `probe` frames (protocol.md §8.2)
  slot = 12,        // welcome to a worker: the slot its master started it in (protocol.md §5)
  group_limits = 13,  // welcome to a node: the bounds its join() checks (protocol.md §5.1)
};

// The group_limits record: u32 max_groups_per_node, u32 max_group_members, both nonzero.
struct group_limits {
  std::uint32_t max_groups_per_node = 0;
  std::uint32_t max_group_members = 0;
  friend bool operator==(const group_limits&, const group_limits&) = default;
};

inline constexpr std::size_t auth_value_size = 32;  // nonces, challenges and proofs
using auth_value = std::array<std::byte, auth_value_size>;

struct hello {
  std::uint16_t version = protocol_version;
  wire::role role = role::host;
  uuid sender;
  uuid target;  // nil = any
  std::uint32_t pid = 0;
  std::string cluster;                     // required
  std::string listen;                      // required for role::host
  std::optional<std::uint32_t> max_frame;  // optional records
  std::optional<std::uint32_t> heartbeat_ms;
  std::string hostname;
  std::optional<std::uint32_t> flow_window;
  std::optional<std::uint32_t> flow_budget;
  std::optional<std::uint32_t> lateness;           // nonzero: send me heartbeats with your lateness
  std::optional<std::uint32_t> probes;             // nonzero: I answer probes
  std::optional<wire::group_limits> group_limits;  // only a welcome carries it
  std::optional<auth_value> auth_nonce;
  friend bool operator==(const hello&, const hello&) = default;
};

struct welcome {
  std::uint16_t version = protocol_version;
  host_id host;
  std::uint32_t pid = 0;
  std::string cluster;
  std::string listen;
  std::optional<std::uint32_t> max_frame;
  std::optional<std::uint32_t> heartbeat_ms;
  std::string hostname;
  std::optional<std::uint32_t> flow_window;
  std::optional<std::uint32_t> flow_budget;
  std::optional<std::uint32_t> lateness;
  std::optional<std::uint32_t> probes;
  std::optional<std::uint32_t> slot;  // to a worker: its slot (< limits::max_workers_per_host)
  std::optional<wire::group_limits> group_limits;  // to a node (protocol.md §5.1)
  std::optional<auth_value> auth_proof;
  friend bool operator==(const welcome&, const welcome&) = default;
};

struct refuse {
  refuse_code code = refuse_code::malformed;
  std::string text;  // truncated to limits::max_refuse_text when encoded
  friend bool operator==(const refuse&, const refuse&) = default;
};

// A nodes_up entry's slot for a node that fills none (an attached node).
inline constexpr std::uint32_t no_slot = 0xFFFFFFFF;

struct node_entry {
  node_id node;
  host_id host;
  std::uint32_t pid = 0;
  std::uint32_t slot = no_slot;  // its worker slot on `host`, < limits::max_workers_per_host
  friend bool operator==(const node_entry&, const node_entry&) = default;
};

struct node_down_entry {
  node_id node;
  leave_reason reason = leave_reason::disconnected;
  std::int32_t detail = 0;
  friend bool operator==(const node_down_entry&, const node_down_entry&) = default;
};

struct host_entry {
  host_id host;
  std::string address;
  friend bool operator==(const host_entry&, const host_entry&) = default;
};

struct host_down_entry {
  host_id host;
  leave_reason reason = leave_reason::host_left;
  friend bool operator==(const host_down_entry&, const host_down_entry&) = default;
};

// Sizes on the wire of the membership frames' parts (docs/protocol.md §5).
inline constexpr std::size_t membership_fixed_size = header_size + 4;  // header + u32 count
inline constexpr std::size_t node_entry_size = 40;
inline constexpr std::size_t node_down_entry_size = 24;
inline constexpr std::size_t host_entry_fixed_size = 18;  // + the address bytes
inline constexpr std::size_t host_down_entry_size = 20;

// How many fixed-size entries one membership frame can carry under `max_frame_size`.
inline constexpr std::size_t entries_per_frame(std::size_t entry_size,
                                               std::uint32_t max_frame_size) noexcept {
  const std::size_t room = max_frame_size > membership_fixed_size
                               ? (max_frame_size - membership_fixed_size) / entry_size
                               : 0;
  return room < limits::max_membership_entries ? room : limits::max_membership_entries;
}

// Encoders append one complete frame to `out`. They never fail and never check sizes: a membership
// encoder writes every entry it is given, so the caller chunks a large set into several frames (see
// entries_per_frame) to keep each within the negotiated max_frame_size and
// limits::max_membership_entries, which a receiving decoder enforces. Strings longer than their u16
// length field are cut to 65535 bytes, a refuse text to limits::max_refuse_text (on a UTF-8
// boundary). hello/welcome omit empty string records and absent numeric ones; an empty hello
// cluster therefore produces a hello that decode_hello refuses.
void append_hello(std::vector<std::byte>& out, const hello& h);
void append_welcome(std::vector<std::byte>& out, const welcome& w);
void append_refuse(std::vector<std::byte>& out, const refuse& r);
void append_heartbeat(std::vector<std::byte>& out);
// A heartbeat that tells how late the sender's loop runs (protocol.md §8.1), in milliseconds; only
// to a peer whose hello or welcome had a nonzero `lateness` record.
void append_heartbeat(std::vector<std::byte>& out, std::uint32_t lateness_ms);
// A round-trip probe and its reply (protocol.md §8.2): the prober's 8-byte token, echoed.
void append_probe(std::vector<std::byte>& out, std::uint64_t token);
void append_probe_reply(std::vector<std::byte>& out, std::uint64_t token);
// The token of a probe or probe_reply (the parser has checked the body's size).
std::uint64_t decode_probe_token(const frame_view& frame) noexcept;
// The lateness a heartbeat carries: 0 for a bodiless one. The parser has checked the body's size.
std::uint32_t decode_heartbeat(const frame_view& frame) noexcept;
void append_goodbye(std::vector<std::byte>& out, leave_reason reason);
// A master's word to its worker that it stops, and the grace it gives (protocol.md §5.2).
void append_stopping(std::vector<std::byte>& out, std::uint32_t grace_ms);
// The grace a stopping frame carries (the parser has checked the body's size).
std::uint32_t decode_stopping(const frame_view& frame) noexcept;
void append_nodes_up(std::vector<std::byte>& out, std::span<const node_entry> nodes, bool snapshot);
void append_nodes_down(std::vector<std::byte>& out, std::span<const node_down_entry> nodes);
void append_hosts_up(std::vector<std::byte>& out, std::span<const host_entry> hosts, bool snapshot);
void append_hosts_down(std::vector<std::byte>& out, std::span<const host_down_entry> hosts);
// The secret's challenge (acceptor → dialler) and the dialler's answer: 32 bytes each.
void append_auth_challenge(std::vector<std::byte>& out, const auth_value& nonce);
void append_auth_proof(std::vector<std::byte>& out, const auth_value& proof);
void append_status_request(std::vector<std::byte>& out);
void append_status_reply(std::vector<std::byte>& out, std::string_view json);
// An observer's request for membership events, and one event (a JSON object) as it happens.
void append_watch_request(std::vector<std::byte>& out);
void append_watch_event(std::vector<std::byte>& out, std::string_view json);

// Decoders validate fully and return a decode_error on malformed input; `out` is then unspecified.
// A hello/welcome with an unsupported version still decodes (so the acceptor can refuse with
// bad_version); the caller checks the version. A frame of another type is malformed input too.
// Errors: handshake frames bad_handshake (bad magic, role or refuse code out of range, a record
// overrunning the body, a known record repeated or of the wrong length, max_frame below
// limits::min_max_frame_size, cluster missing or not 1..64 bytes, role host without listen, refuse
// text over 256 bytes, text that is not clean UTF-8 (base::is_clean_name: cluster, hostname ≤ 255
// bytes, listen ≤ 64 bytes; a refuse text may hold any valid UTF-8), an auth record not 32 bytes,
// an auth_proof record that is not a welcome's last, an auth_nonce in a welcome, a slot record in a
// hello or at or above limits::max_workers_per_host, a group_limits record not 8 bytes or holding
// a zero); membership frames bad_membership (count not matching the body exactly, over
// limits::max_membership_entries, leave reason out of range, a nodes_up slot neither no_slot nor
// below limits::max_workers_per_host); goodbye bad_body (not exactly one byte, or a reason out of
// range); hosts_up bad_membership also for an address that is not clean text of 1..64 bytes.
// Unknown record tags are skipped.
std::error_code decode_hello(const frame_view& frame, hello& out);
std::error_code decode_welcome(const frame_view& frame, welcome& out);
std::error_code decode_refuse(const frame_view& frame, refuse& out);
std::error_code decode_goodbye(const frame_view& frame, leave_reason& out);
// The 32-byte value of an auth_challenge or auth_proof frame (bad_body for any other frame).
std::error_code decode_auth_value(const frame_view& frame, auth_value& out);
// Where a welcome's auth_proof record keeps its value: the frame's last 32 bytes.
inline constexpr std::size_t welcome_proof_size = auth_value_size;
std::error_code decode_nodes_up(const frame_view& frame, std::vector<node_entry>& out,
                                bool& snapshot);
std::error_code decode_nodes_down(const frame_view& frame, std::vector<node_down_entry>& out);
std::error_code decode_hosts_up(const frame_view& frame, std::vector<host_entry>& out,
                                bool& snapshot);
std::error_code decode_hosts_down(const frame_view& frame, std::vector<host_down_entry>& out);
// The JSON of a status_reply or watch_event (empty for any other frame).
std::string_view status_json(const frame_view& frame);

}  // namespace galaxies::wire
