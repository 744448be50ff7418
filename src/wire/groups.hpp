// Groups on the wire: the membership frames groups_up / groups_down (docs/protocol.md §5.1) and
// the publish frame a master fans out to a group's members on its host (§4.3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "galaxies/ids.hpp"
#include "wire/frame.hpp"

namespace galaxies::wire {

// One node's membership of one group. The name is clean UTF-8 of 1..limits::max_group_name bytes.
struct group_entry {
  node_id node;
  std::string name;
  friend bool operator==(const group_entry&, const group_entry&) = default;
};

// {16 node, u8 name length} before the name's bytes.
inline constexpr std::size_t group_entry_fixed_size = 17;

// Whether `name` may name a group: clean UTF-8 (base::is_clean_name) of 1..max_group_name bytes.
bool is_group_name(std::string_view name) noexcept;

// Bytes one entry takes in a groups_up / groups_down body.
inline constexpr std::size_t group_entry_size(const group_entry& e) noexcept {
  return group_entry_fixed_size + e.name.size();
}

// Encoders append one complete frame; the caller keeps names valid (is_group_name) and chunks a
// large set so that each frame fits the link's max_frame_size (each entry takes at most 81 bytes).
void append_groups_up(std::vector<std::byte>& out, std::span<const group_entry> entries,
                      bool snapshot);
void append_groups_down(std::vector<std::byte>& out, std::span<const group_entry> entries);

// Full validation (bad_membership): the count within limits::max_membership_entries and the
// body's size, every name a group name, entries filling the body exactly.
std::error_code decode_groups_up(const frame_view& frame, std::vector<group_entry>& out,
                                 bool& snapshot);
std::error_code decode_groups_down(const frame_view& frame, std::vector<group_entry>& out);

// ---- publish (§4.3) -------------------------------------------------------------------------

// The fixed part, laid out like a message's (src and dst where masters read them).
inline constexpr std::size_t publish_header_size = 56;

inline constexpr std::size_t publish_frame_size(std::size_t command, std::size_t group,
                                                std::size_t members, std::size_t payload) noexcept {
  return publish_header_size + command + group + members * uuid::size + payload;
}

struct publish_view {
  node_id src;
  host_id dst;  // the host whose listed nodes the frame is for
  std::string_view command;
  std::string_view group;
  std::span<const std::byte> members;  // count × 16 bytes, as on the wire
  std::span<const std::byte> payload;

  std::size_t count() const noexcept { return members.size() / uuid::size; }
  node_id member(std::size_t i) const noexcept;
  bool lists(const node_id& node) const noexcept;
};

// Appends one publish frame for the `members` (nodes of host `dst`). Fails, leaving `out`
// untouched, with std::errc::invalid_argument for an empty command, a name that is not a group
// name or no member, and errc::too_large for a command over limits::max_command_size or a frame
// over max_frame_size.
std::error_code append_publish(std::vector<std::byte>& out, const node_id& src, const host_id& dst,
                               std::string_view command, std::string_view group,
                               std::span<const node_id> members, std::span<const std::byte> payload,
                               std::uint32_t max_frame_size, std::uint8_t flags = 0);

// Full validation (bad_message): what the parser checks of every message frame, the command
// valid UTF-8, the group a group name, the count 1..max_members and within the body, the listed
// nodes distinct, none nil, none the publisher. What a master checks where the frame arrives.
std::error_code decode_publish(const frame_view& frame, publish_view& out,
                               std::size_t max_members) noexcept;

// The host a publish frame is for (the parser has checked the fixed part is there).
host_id peek_publish_host(const frame_view& frame) noexcept;

}  // namespace galaxies::wire
