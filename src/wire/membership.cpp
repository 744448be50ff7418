// Membership frames: nodes_up, nodes_down, hosts_up, hosts_down (docs/protocol.md §5).
#include <string_view>

#include "base/text.hpp"
#include "wire/byte_io.hpp"
#include "wire/codes.hpp"
#include "wire/control.hpp"

namespace galaxies::wire {
namespace {

constexpr std::size_t count_size = 4;
constexpr std::size_t max_address = 0xffff;

std::string_view address_value(std::string_view address) noexcept {
  return address.substr(0, max_address);
}

// Reads the count and checks it against the body before anything is allocated: the count is
// attacker-controlled, the body length is what actually arrived. Fixed-size entries must fill the
// body exactly; variable ones (hosts_up) must at least have room for their fixed part.
std::error_code open_list(const frame_view& frame, frame_type expected, std::size_t entry_size,
                          bool exact, detail::byte_reader& reader, std::uint32_t& count) noexcept {
  const std::error_code bad = decode_error::bad_membership;
  if (frame.header.type != expected) return bad;
  reader = detail::byte_reader(detail::body_of(frame));
  if (!reader.get(count)) return bad;
  if (count > limits::max_membership_entries) return bad;
  const std::uint64_t needed = std::uint64_t{count} * entry_size;
  if (exact ? needed != reader.remaining() : needed > reader.remaining()) return bad;
  return {};
}

bool read_reason(detail::byte_reader& reader, leave_reason& out) noexcept {
  std::uint8_t value = 0;
  if (!reader.get(value) || !detail::is_leave_reason(value)) return false;
  out = static_cast<leave_reason>(value);
  return true;
}

}  // namespace

void append_nodes_up(std::vector<std::byte>& out, std::span<const node_entry> nodes,
                     bool snapshot) {
  auto writer = detail::begin_frame(out, frame_type::nodes_up, snapshot ? flag_snapshot : 0, 0,
                                    count_size + nodes.size() * node_entry_size);
  writer.put(static_cast<std::uint32_t>(nodes.size()));
  for (const node_entry& entry : nodes) {
    writer.put_id(entry.node);
    writer.put_id(entry.host);
    writer.put(entry.pid);
    writer.put(entry.slot);
  }
}

void append_nodes_down(std::vector<std::byte>& out, std::span<const node_down_entry> nodes) {
  auto writer = detail::begin_frame(out, frame_type::nodes_down, 0, 0,
                                    count_size + nodes.size() * node_down_entry_size);
  writer.put(static_cast<std::uint32_t>(nodes.size()));
  for (const node_down_entry& entry : nodes) {
    writer.put_id(entry.node);
    writer.put(static_cast<std::uint8_t>(entry.reason));
    writer.put_zeros(3);
    writer.put(entry.detail);
  }
}

void append_hosts_up(std::vector<std::byte>& out, std::span<const host_entry> hosts,
                     bool snapshot) {
  std::size_t body = count_size;
  for (const host_entry& entry : hosts) {
    body += host_entry_fixed_size + address_value(entry.address).size();
  }
  auto writer =
      detail::begin_frame(out, frame_type::hosts_up, snapshot ? flag_snapshot : 0, 0, body);
  writer.put(static_cast<std::uint32_t>(hosts.size()));
  for (const host_entry& entry : hosts) {
    const std::string_view address = address_value(entry.address);
    writer.put_id(entry.host);
    writer.put(static_cast<std::uint16_t>(address.size()));
    writer.put_bytes(address.data(), address.size());
  }
}

void append_hosts_down(std::vector<std::byte>& out, std::span<const host_down_entry> hosts) {
  auto writer = detail::begin_frame(out, frame_type::hosts_down, 0, 0,
                                    count_size + hosts.size() * host_down_entry_size);
  writer.put(static_cast<std::uint32_t>(hosts.size()));
  for (const host_down_entry& entry : hosts) {
    writer.put_id(entry.host);
    writer.put(static_cast<std::uint8_t>(entry.reason));
    writer.put_zeros(3);
  }
}

std::error_code decode_nodes_up(const frame_view& frame, std::vector<node_entry>& out,
                                bool& snapshot) {
  detail::byte_reader reader({});
  std::uint32_t count = 0;
  if (auto ec = open_list(frame, frame_type::nodes_up, node_entry_size, true, reader, count)) {
    return ec;
  }
  out.clear();
  out.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    node_entry& entry = out.emplace_back();
    // open_list proved the body holds exactly `count` entries.
    reader.get_id(entry.node);
    reader.get_id(entry.host);
    reader.get(entry.pid);
    reader.get(entry.slot);
    if (entry.slot != no_slot && entry.slot >= limits::max_workers_per_host)
      return decode_error::bad_membership;
  }
  snapshot = (frame.header.flags & flag_snapshot) != 0;
  return {};
}

std::error_code decode_nodes_down(const frame_view& frame, std::vector<node_down_entry>& out) {
  detail::byte_reader reader({});
  std::uint32_t count = 0;
  if (auto ec =
          open_list(frame, frame_type::nodes_down, node_down_entry_size, true, reader, count)) {
    return ec;
  }
  out.clear();
  out.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    node_down_entry& entry = out.emplace_back();
    reader.get_id(entry.node);
    if (!read_reason(reader, entry.reason)) return decode_error::bad_membership;
    reader.skip(3);
    reader.get(entry.detail);
  }
  return {};
}

std::error_code decode_hosts_up(const frame_view& frame, std::vector<host_entry>& out,
                                bool& snapshot) {
  const std::error_code bad = decode_error::bad_membership;
  detail::byte_reader reader({});
  std::uint32_t count = 0;
  if (auto ec =
          open_list(frame, frame_type::hosts_up, host_entry_fixed_size, false, reader, count)) {
    return ec;
  }
  out.clear();
  out.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    host_entry& entry = out.emplace_back();
    std::uint16_t length = 0;
    std::string_view address;
    if (!reader.get_id(entry.host) || !reader.get(length) || !reader.get_string(length, address)) {
      return bad;
    }
    // Shown to applications and printed in events: text as clean as a hello's listen record.
    if (!base::is_clean_name(address, limits::max_address_size)) return bad;
    entry.address = address;
  }
  if (!reader.empty()) return bad;
  snapshot = (frame.header.flags & flag_snapshot) != 0;
  return {};
}

std::error_code decode_hosts_down(const frame_view& frame, std::vector<host_down_entry>& out) {
  detail::byte_reader reader({});
  std::uint32_t count = 0;
  if (auto ec =
          open_list(frame, frame_type::hosts_down, host_down_entry_size, true, reader, count)) {
    return ec;
  }
  out.clear();
  out.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    host_down_entry& entry = out.emplace_back();
    reader.get_id(entry.host);
    if (!read_reason(reader, entry.reason)) return decode_error::bad_membership;
    reader.skip(3);
  }
  return {};
}

}  // namespace galaxies::wire
