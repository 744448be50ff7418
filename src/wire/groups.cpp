// Groups on the wire (docs/protocol.md §4.3, §5.1).
#include "wire/groups.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "base/endian.hpp"
#include "base/limits.hpp"
#include "base/text.hpp"
#include "galaxies/error.hpp"
#include "wire/byte_io.hpp"
#include "wire/message.hpp"

namespace galaxies::wire {
namespace {

constexpr std::size_t count_size = 4;
// Offsets of publish's own fields in its fixed part (the rest is a message header's).
constexpr std::size_t count_offset = 48;
constexpr std::size_t name_length_offset = 52;
// Up to this many members, distinctness is checked pairwise in place; beyond, on a sorted copy.
constexpr std::size_t pairwise_members = 32;

std::size_t body_size(std::span<const group_entry> entries) noexcept {
  std::size_t size = count_size;
  for (const auto& e : entries) size += group_entry_size(e);
  return size;
}

void append_groups(std::vector<std::byte>& out, frame_type type,
                   std::span<const group_entry> entries, std::uint8_t flags) {
  auto writer = detail::begin_frame(out, type, flags, 0, body_size(entries));
  writer.put(static_cast<std::uint32_t>(entries.size()));
  for (const auto& e : entries) {
    writer.put_id(e.node);
    writer.put(static_cast<std::uint8_t>(e.name.size()));
    writer.put_bytes(e.name.data(), e.name.size());
  }
}

std::error_code decode_groups(const frame_view& frame, frame_type expected,
                              std::vector<group_entry>& out) {
  const std::error_code bad = decode_error::bad_membership;
  if (frame.header.type != expected) return bad;
  detail::byte_reader reader(detail::body_of(frame));
  std::uint32_t count = 0;
  if (!reader.get(count) || count > limits::max_membership_entries) return bad;
  // Judged before anything is allocated: every entry takes at least its fixed part plus a byte.
  if (std::uint64_t{count} * (group_entry_fixed_size + 1) > reader.remaining()) return bad;
  out.clear();
  out.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    group_entry& e = out.emplace_back();
    std::uint8_t length = 0;
    std::string_view name;
    if (!reader.get_id(e.node) || !reader.get(length) || !reader.get_string(length, name) ||
        !is_group_name(name))
      return bad;
    e.name = name;
  }
  if (!reader.empty()) return bad;
  return {};
}

uuid uuid_at(const std::byte* at) noexcept {
  std::array<std::uint8_t, uuid::size> raw;
  std::memcpy(raw.data(), at, uuid::size);
  return uuid(raw);
}

bool distinct(std::span<const std::byte> members, std::size_t count) noexcept {
  const auto at = [&](std::size_t i) { return members.data() + i * uuid::size; };
  if (count <= pairwise_members) {
    for (std::size_t i = 0; i < count; ++i)
      for (std::size_t j = i + 1; j < count; ++j)
        if (std::memcmp(at(i), at(j), uuid::size) == 0) return false;
    return true;
  }
  std::vector<uuid> sorted;
  sorted.reserve(count);
  for (std::size_t i = 0; i < count; ++i) sorted.push_back(uuid_at(at(i)));
  std::sort(sorted.begin(), sorted.end());
  return std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end();
}

}  // namespace

bool is_group_name(std::string_view name) noexcept {
  return base::is_clean_name(name, limits::max_group_name);
}

void append_groups_up(std::vector<std::byte>& out, std::span<const group_entry> entries,
                      bool snapshot) {
  append_groups(out, frame_type::groups_up, entries, snapshot ? flag_snapshot : 0);
}

void append_groups_down(std::vector<std::byte>& out, std::span<const group_entry> entries) {
  append_groups(out, frame_type::groups_down, entries, 0);
}

std::error_code decode_groups_up(const frame_view& frame, std::vector<group_entry>& out,
                                 bool& snapshot) {
  if (auto ec = decode_groups(frame, frame_type::groups_up, out)) return ec;
  snapshot = (frame.header.flags & flag_snapshot) != 0;
  return {};
}

std::error_code decode_groups_down(const frame_view& frame, std::vector<group_entry>& out) {
  return decode_groups(frame, frame_type::groups_down, out);
}

node_id publish_view::member(std::size_t i) const noexcept {
  return node_id(uuid_at(members.data() + i * uuid::size));
}

bool publish_view::lists(const node_id& node) const noexcept {
  const auto& raw = node.value().bytes();
  for (std::size_t i = 0; i < count(); ++i)
    if (std::memcmp(members.data() + i * uuid::size, raw.data(), uuid::size) == 0) return true;
  return false;
}

std::error_code append_publish(std::vector<std::byte>& out, const node_id& src, const host_id& dst,
                               std::string_view command, std::string_view group,
                               std::span<const node_id> members, std::span<const std::byte> payload,
                               std::uint32_t max_frame_size, std::uint8_t flags) {
  if (command.empty() || members.empty() || !is_group_name(group))
    return std::make_error_code(std::errc::invalid_argument);
  if (command.size() > limits::max_command_size) return errc::too_large;
  // Compared part by part, so that no size can wrap the sum.
  if (payload.size() > max_frame_size || members.size() > max_frame_size ||
      publish_frame_size(command.size(), group.size(), members.size(), payload.size()) >
          max_frame_size)
    return errc::too_large;
  const std::size_t body =
      publish_frame_size(command.size(), group.size(), members.size(), payload.size()) -
      header_size;
  auto writer = detail::begin_frame(out, frame_type::publish, flags,
                                    static_cast<std::uint16_t>(command.size()), body);
  writer.put_id(src);
  writer.put_id(dst);
  writer.put(std::uint64_t{0});
  writer.put(static_cast<std::uint32_t>(members.size()));
  writer.put(static_cast<std::uint8_t>(group.size()));
  writer.put_zeros(3);
  writer.put_bytes(command.data(), command.size());
  writer.put_bytes(group.data(), group.size());
  for (const node_id& m : members) writer.put_id(m);
  writer.put_bytes(payload.data(), payload.size());
  return {};
}

std::error_code decode_publish(const frame_view& frame, publish_view& out,
                               std::size_t max_members) noexcept {
  const std::error_code bad = decode_error::bad_message;
  if (frame.header.type != frame_type::publish) return bad;
  if (auto ec = check_message_frame(frame)) return ec;
  const auto bytes = frame.bytes;
  const std::size_t count = base::load_le<std::uint32_t>(bytes.data() + count_offset);
  const std::size_t name_length = base::load_le<std::uint8_t>(bytes.data() + name_length_offset);
  if (count == 0 || count > max_members) return bad;
  detail::byte_reader reader(bytes.subspan(publish_header_size));
  // check_message_frame proved the command is there.
  reader.get_string(frame.header.aux, out.command);
  if (!base::is_valid_utf8(out.command)) return bad;
  if (!reader.get_string(name_length, out.group) || !is_group_name(out.group)) return bad;
  if (std::uint64_t{count} * uuid::size > reader.remaining()) return bad;
  reader.get_bytes(count * uuid::size, out.members);
  reader.get_bytes(reader.remaining(), out.payload);
  out.src = peek_src(frame);
  out.dst = host_id(peek_dst(frame).value());
  if (out.lists(node_id{}) || out.lists(out.src) || !distinct(out.members, count)) return bad;
  return {};
}

host_id peek_publish_host(const frame_view& frame) noexcept {
  return host_id(peek_dst(frame).value());
}

}  // namespace galaxies::wire
