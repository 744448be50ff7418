// Handshake frames: hello, welcome, refuse, and their records (docs/protocol.md §3).
#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>
#include <type_traits>

#include "base/text.hpp"
#include "wire/byte_io.hpp"
#include "wire/codes.hpp"
#include "wire/control.hpp"

namespace galaxies::wire {
namespace {

constexpr char magic[4] = {'G', 'L', 'X', 'Y'};
constexpr std::size_t hello_fixed_size = 44;
constexpr std::size_t welcome_fixed_size = 24;
constexpr std::size_t record_header_size = 4;  // u16 tag, u16 length
constexpr std::size_t max_record_value = 0xffff;

// A record length is a u16; clamping keeps an absurd string from corrupting the frame layout.
std::string_view record_value(std::string_view value) noexcept {
  return value.substr(0, max_record_value);
}

// The one auth record each message may carry: a hello's nonce, a welcome's proof.
inline const std::optional<auth_value>& auth_record(const hello& h) noexcept {
  return h.auth_nonce;
}
inline const std::optional<auth_value>& auth_record(const welcome& w) noexcept {
  return w.auth_proof;
}
inline std::optional<auth_value>& auth_record(hello& h) noexcept {
  return h.auth_nonce;
}
inline std::optional<auth_value>& auth_record(welcome& w) noexcept {
  return w.auth_proof;
}
// Only a welcome (to a worker) names a slot.
inline std::optional<std::uint32_t> slot_record(const hello&) noexcept {
  return std::nullopt;
}
inline std::optional<std::uint32_t> slot_record(const welcome& w) noexcept {
  return w.slot;
}
inline std::optional<std::uint32_t>* slot_field(hello&) noexcept {
  return nullptr;
}
inline std::optional<std::uint32_t>* slot_field(welcome& w) noexcept {
  return &w.slot;
}
template <class Message>
constexpr record_tag auth_tag =
    std::is_same_v<Message, hello> ? record_tag::auth_nonce : record_tag::auth_proof;

// The record set is the same for hello and welcome, and both structs name its fields alike, so one
// template serves both. Records are written in tag order; empty strings and absent numbers are
// omitted.
template <class Message>
std::size_t records_size(const Message& m) noexcept {
  std::size_t size = 0;
  for (std::string_view text :
       {std::string_view(m.cluster), std::string_view(m.listen), std::string_view(m.hostname)}) {
    if (!text.empty()) size += record_header_size + record_value(text).size();
  }
  if (m.max_frame) size += record_header_size + 4;
  if (m.heartbeat_ms) size += record_header_size + 4;
  if (m.flow_window) size += record_header_size + 4;
  if (m.flow_budget) size += record_header_size + 4;
  if (m.lateness) size += record_header_size + 4;
  if (m.probes) size += record_header_size + 4;
  if (slot_record(m)) size += record_header_size + 4;
  if (m.group_limits) size += record_header_size + 8;
  if (auth_record(m)) size += record_header_size + auth_value_size;
  return size;
}

template <class Message>
void write_records(detail::byte_writer& writer, const Message& m) noexcept {
  auto text = [&](record_tag tag, std::string_view value) {
    if (value.empty()) return;
    value = record_value(value);
    writer.put(static_cast<std::uint16_t>(tag));
    writer.put(static_cast<std::uint16_t>(value.size()));
    writer.put_bytes(value.data(), value.size());
  };
  auto number = [&](record_tag tag, const std::optional<std::uint32_t>& value) {
    if (!value) return;
    writer.put(static_cast<std::uint16_t>(tag));
    writer.put(std::uint16_t{4});
    writer.put(*value);
  };
  text(record_tag::cluster, m.cluster);
  text(record_tag::listen, m.listen);
  number(record_tag::max_frame, m.max_frame);
  number(record_tag::heartbeat_ms, m.heartbeat_ms);
  text(record_tag::hostname, m.hostname);
  number(record_tag::flow_window, m.flow_window);
  number(record_tag::flow_budget, m.flow_budget);
  number(record_tag::lateness, m.lateness);
  number(record_tag::probes, m.probes);
  number(record_tag::slot, slot_record(m));
  if (m.group_limits) {
    writer.put(static_cast<std::uint16_t>(record_tag::group_limits));
    writer.put(std::uint16_t{8});
    writer.put(m.group_limits->max_groups_per_node);
    writer.put(m.group_limits->max_group_members);
  }
  // Last, so that a welcome's proof is its final 32 bytes (the acceptor signs all before them).
  if (const auto& value = auth_record(m)) {
    writer.put(static_cast<std::uint16_t>(auth_tag<Message>));
    writer.put(static_cast<std::uint16_t>(value->size()));
    writer.put_bytes(value->data(), value->size());
  }
}

bool read_u32(std::string_view value, std::optional<std::uint32_t>& out) noexcept {
  if (value.size() != 4) return false;
  out = base::load_le<std::uint32_t>(reinterpret_cast<const std::byte*>(value.data()));
  return true;
}

// Walks the records to the end of the body. Unknown tags are skipped (a newer peer's features), but
// a known tag seen twice is refused: two cluster records would let the two ends disagree on which
// counts.
template <class Message>
std::error_code read_records(detail::byte_reader reader, Message& out) {
  const std::error_code bad = decode_error::bad_handshake;
  unsigned seen = 0;
  while (!reader.empty()) {
    std::uint16_t tag = 0;
    std::uint16_t length = 0;
    std::string_view value;
    if (!reader.get(tag) || !reader.get(length) || !reader.get_string(length, value)) return bad;
    switch (static_cast<record_tag>(tag)) {
      case record_tag::cluster:
        if (!base::is_clean_name(value, limits::max_cluster_name)) return bad;
        out.cluster = value;
        break;
      case record_tag::listen:
        if (!base::is_clean_name(value, limits::max_address_size)) return bad;
        out.listen = value;
        break;
      case record_tag::max_frame:
        // Below the floor no handshake or membership frame could be sent at all.
        if (!read_u32(value, out.max_frame) || *out.max_frame < limits::min_max_frame_size) {
          return bad;
        }
        break;
      case record_tag::heartbeat_ms:
        if (!read_u32(value, out.heartbeat_ms)) return bad;
        break;
      case record_tag::hostname:
        if (!base::is_clean_name(value, limits::max_hostname_size)) return bad;
        out.hostname = value;
        break;
      case record_tag::flow_window:
        // A tiny window would turn every frame into a credit round trip.
        if (!read_u32(value, out.flow_window) || *out.flow_window < limits::min_flow_window)
          return bad;
        break;
      case record_tag::flow_budget:
        if (!read_u32(value, out.flow_budget)) return bad;
        break;
      case record_tag::lateness:
        if (!read_u32(value, out.lateness)) return bad;
        break;
      case record_tag::probes:
        if (!read_u32(value, out.probes)) return bad;
        break;
      case record_tag::slot: {
        auto* slot = slot_field(out);
        if (!slot || !read_u32(value, *slot) || **slot >= limits::max_workers_per_host) return bad;
        break;
      }
      case record_tag::group_limits: {
        if (value.size() != 8) return bad;
        const auto* raw = reinterpret_cast<const std::byte*>(value.data());
        const group_limits limits{base::load_le<std::uint32_t>(raw),
                                  base::load_le<std::uint32_t>(raw + 4)};
        // A node could join nothing.
        if (limits.max_groups_per_node == 0 || limits.max_group_members == 0) return bad;
        out.group_limits = limits;
        break;
      }
      case record_tag::auth_nonce:
      case record_tag::auth_proof: {
        // A welcome's proof covers every byte before it, so nothing may follow it.
        if (static_cast<record_tag>(tag) != auth_tag<Message> || value.size() != auth_value_size)
          return bad;
        if (tag == static_cast<std::uint16_t>(record_tag::auth_proof) && !reader.empty())
          return bad;
        auto& slot = auth_record(out).emplace();
        std::memcpy(slot.data(), value.data(), slot.size());
        break;
      }
      default:
        continue;  // a newer peer's feature
    }
    // Only known tags get here, and they are all below 32.
    if (seen & (1u << tag)) return bad;
    seen |= 1u << tag;
  }
  return {};
}

// Cuts at most `limit` bytes without splitting a UTF-8 sequence, so the peer logs valid text.
std::string_view truncate_utf8(std::string_view text, std::size_t limit) noexcept {
  if (text.size() <= limit) return text;
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
  return text.substr(0, cut);
}

}  // namespace

const char* to_string(role r) noexcept {
  switch (r) {
    case role::host:
      return "host";
    case role::worker:
      return "worker";
    case role::attached:
      return "attached";
    case role::observer:
      return "observer";
  }
  return "unknown";
}

const char* to_string(refuse_code code) noexcept {
  switch (code) {
    case refuse_code::wrong_target:
      return "wrong_target";
    case refuse_code::wrong_cluster:
      return "wrong_cluster";
    case refuse_code::bad_version:
      return "bad_version";
    case refuse_code::duplicate_link:
      return "duplicate_link";
    case refuse_code::malformed:
      return "malformed";
    case refuse_code::shutting_down:
      return "shutting_down";
    case refuse_code::duplicate_node:
      return "duplicate_node";
    case refuse_code::wrong_role:
      return "wrong_role";
    case refuse_code::unauthorized:
      return "unauthorized";
    case refuse_code::overloaded:
      return "overloaded";
  }
  return "unknown";
}

void append_hello(std::vector<std::byte>& out, const hello& h) {
  auto writer =
      detail::begin_frame(out, frame_type::hello, 0, 0, hello_fixed_size + records_size(h));
  writer.put_bytes(magic, sizeof magic);
  writer.put(h.version);
  writer.put(static_cast<std::uint8_t>(h.role));
  writer.put(std::uint8_t{0});
  writer.put_uuid(h.sender);
  writer.put_uuid(h.target);
  writer.put(h.pid);
  write_records(writer, h);
}

void append_welcome(std::vector<std::byte>& out, const welcome& w) {
  auto writer =
      detail::begin_frame(out, frame_type::welcome, 0, 0, welcome_fixed_size + records_size(w));
  writer.put(w.version);
  writer.put(std::uint16_t{0});
  writer.put_id(w.host);
  writer.put(w.pid);
  write_records(writer, w);
}

void append_refuse(std::vector<std::byte>& out, const refuse& r) {
  const std::string_view text = truncate_utf8(r.text, limits::max_refuse_text);
  auto writer = detail::begin_frame(out, frame_type::refuse, 0, 0, 2 + text.size());
  writer.put(static_cast<std::uint16_t>(r.code));
  writer.put_bytes(text.data(), text.size());
}

std::error_code decode_hello(const frame_view& frame, hello& out) {
  const std::error_code bad = decode_error::bad_handshake;
  if (frame.header.type != frame_type::hello) return bad;
  detail::byte_reader reader(detail::body_of(frame));

  std::span<const std::byte> found_magic;
  std::uint8_t role_value = 0;
  std::uint8_t reserved = 0;
  out = hello{};
  if (!reader.get_bytes(sizeof magic, found_magic) ||
      std::memcmp(found_magic.data(), magic, sizeof magic) != 0) {
    return bad;
  }
  if (!reader.get(out.version) || !reader.get(role_value) || !reader.get(reserved) ||
      !reader.get_uuid(out.sender) || !reader.get_uuid(out.target) || !reader.get(out.pid)) {
    return bad;
  }
  if (!detail::is_role(role_value)) return bad;
  out.role = static_cast<role>(role_value);

  if (auto ec = read_records(reader, out)) return ec;
  if (out.cluster.empty()) return bad;
  // A host must say where it listens, or the acceptor could not tell others how to reach it.
  if (out.role == role::host && out.listen.empty()) return bad;
  return {};
}

std::error_code decode_welcome(const frame_view& frame, welcome& out) {
  const std::error_code bad = decode_error::bad_handshake;
  if (frame.header.type != frame_type::welcome) return bad;
  detail::byte_reader reader(detail::body_of(frame));

  std::uint16_t reserved = 0;
  out = welcome{};
  if (!reader.get(out.version) || !reader.get(reserved) || !reader.get_id(out.host) ||
      !reader.get(out.pid)) {
    return bad;
  }
  return read_records(reader, out);
}

std::error_code decode_refuse(const frame_view& frame, refuse& out) {
  const std::error_code bad = decode_error::bad_handshake;
  if (frame.header.type != frame_type::refuse) return bad;
  detail::byte_reader reader(detail::body_of(frame));

  std::uint16_t code = 0;
  if (!reader.get(code) || !detail::is_refuse_code(code)) return bad;
  if (reader.remaining() > limits::max_refuse_text) return bad;
  std::string_view text;
  reader.get_string(reader.remaining(), text);
  // Shown to people as it is, escaped only for control characters.
  if (!base::is_valid_utf8(text)) return bad;
  out.code = static_cast<refuse_code>(code);
  out.text = text;
  return {};
}

}  // namespace galaxies::wire
