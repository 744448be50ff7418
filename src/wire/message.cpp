// Message frames: send, request, reply, broadcast (docs/protocol.md §4).
#include "wire/message.hpp"

#include <array>
#include <cstring>

#include "base/endian.hpp"
#include "base/text.hpp"
#include "galaxies/error.hpp"
#include "wire/byte_io.hpp"
#include "wire/groups.hpp"
#include "wire/message_batch.hpp"

namespace galaxies::wire {
namespace {

// Fixed offsets of the message header (docs/protocol.md §4): routers read them without a cursor.
constexpr std::size_t src_offset = 8;
constexpr std::size_t dst_offset = 24;
constexpr std::size_t request_id_offset = 40;
constexpr std::size_t word_offset = 48;
constexpr std::size_t reserved_offset = 52;
static_assert(word_offset + 4 == reserved_offset && reserved_offset + 4 == message_header_size);

bool command_length_fits_type(frame_type type, std::size_t command) noexcept {
  // A reply answers by request id and carries no command; a batch's messages carry theirs; every
  // other message names one.
  if (type == frame_type::reply || type == frame_type::send_batch) return command == 0;
  return command != 0;
}

bool carries_request_id(frame_type type) noexcept {
  return type == frame_type::request || type == frame_type::reply;
}

node_id id_at(const frame_view& frame, std::size_t offset) noexcept {
  if (frame.bytes.size() < offset + uuid::size) return {};
  std::array<std::uint8_t, uuid::size> raw;
  std::memcpy(raw.data(), frame.bytes.data() + offset, uuid::size);
  return node_id(uuid(raw));
}

}  // namespace

std::error_code check_message_frame(const frame_view& frame) noexcept {
  const frame_type type = frame.header.type;
  const std::size_t command = frame.header.aux;
  if (!is_message(type)) return decode_error::bad_message;
  if (frame.bytes.size() < message_header_size) return decode_error::bad_message;
  if (command > limits::max_command_size) return decode_error::bad_message;
  if (!command_length_fits_type(type, command)) return decode_error::bad_message;
  if (command > frame.bytes.size() - message_header_size) return decode_error::bad_message;
  return {};
}

std::error_code decode_message(const frame_view& frame, message_view& out) noexcept {
  if (auto ec = check_message_frame(frame)) return ec;
  if (frame.header.type == frame_type::send_batch || frame.header.type == frame_type::publish)
    return decode_error::bad_message;

  detail::byte_reader reader(detail::body_of(frame));
  std::uint32_t reserved = 0;
  // check_message_frame proved the fixed part and the command are present, so these cannot fail.
  reader.get_id(out.src);
  reader.get_id(out.dst);
  reader.get(out.request_id);
  reader.get(out.word);
  reader.get(reserved);
  reader.get_string(frame.header.aux, out.command);
  reader.get_bytes(reader.remaining(), out.payload);
  out.type = frame.header.type;

  // Ids start at 1 and a requester matches replies by id, so zero can only be a broken peer.
  if (carries_request_id(out.type) && out.request_id == 0) return decode_error::bad_message;
  // Handlers are looked up, and commands logged, as text.
  if (!base::is_valid_utf8(out.command)) return decode_error::bad_message;
  return {};
}

std::error_code check_message_body(const frame_view& frame) noexcept {
  // decode_message's rules without its copies into a message_view: a master checks every frame.
  if (frame.header.type == frame_type::send_batch) return check_batch(frame);
  if (frame.header.type == frame_type::publish) {
    publish_view ignored;
    return decode_publish(frame, ignored, limits::max_membership_entries);
  }
  if (auto ec = check_message_frame(frame)) return ec;
  if (carries_request_id(frame.header.type) &&
      base::load_le<std::uint64_t>(frame.bytes.data() + request_id_offset) == 0)
    return decode_error::bad_message;
  const std::string_view command(
      reinterpret_cast<const char*>(frame.bytes.data() + message_header_size), frame.header.aux);
  if (!base::is_valid_utf8(command)) return decode_error::bad_message;
  return {};
}

node_id peek_src(const frame_view& frame) noexcept {
  return id_at(frame, src_offset);
}

node_id peek_dst(const frame_view& frame) noexcept {
  return id_at(frame, dst_offset);
}

std::uint64_t peek_request_id(const frame_view& frame) noexcept {
  if (frame.bytes.size() < request_id_offset + 8) return 0;
  return base::load_le<std::uint64_t>(frame.bytes.data() + request_id_offset);
}

std::uint32_t peek_word(const frame_view& frame) noexcept {
  if (frame.bytes.size() < word_offset + 4) return 0;
  return base::load_le<std::uint32_t>(frame.bytes.data() + word_offset);
}

void poke_word(std::span<std::byte> frame, std::uint32_t word) noexcept {
  if (frame.size() >= word_offset + 4) base::store_le(frame.data() + word_offset, word);
}

std::error_code append_message(std::vector<std::byte>& out, frame_type type, const node_id& src,
                               const node_id& dst, std::uint64_t request_id, std::uint32_t word,
                               std::string_view command, std::span<const std::byte> payload,
                               std::uint32_t max_frame_size, std::uint8_t flags) {
  if (!is_message(type) || type == frame_type::send_batch || type == frame_type::publish ||
      !command_length_fits_type(type, command.size())) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (command.size() > limits::max_command_size) return errc::too_large;
  // Compared before adding, so that no payload size can wrap the sum.
  if (payload.size() > max_frame_size ||
      message_frame_size(command.size(), payload.size()) > max_frame_size) {
    return errc::too_large;
  }

  const std::size_t body = message_frame_size(command.size(), payload.size()) - header_size;
  auto writer =
      detail::begin_frame(out, type, flags, static_cast<std::uint16_t>(command.size()), body);
  writer.put_id(src);
  writer.put_id(dst);
  writer.put(request_id);
  writer.put(word);
  writer.put(std::uint32_t{0});
  writer.put_bytes(command.data(), command.size());
  writer.put_bytes(payload.data(), payload.size());
  return {};
}

}  // namespace galaxies::wire
