// send_batch frames (docs/protocol.md §4.2).
#include "wire/message_batch.hpp"

#include <cstring>

#include "base/endian.hpp"
#include "base/limits.hpp"
#include "base/text.hpp"
#include "wire/message.hpp"

namespace galaxies::wire {
namespace {

constexpr std::size_t count_offset = 48;

bool is_batch(std::span<const std::byte> frame) noexcept {
  return static_cast<frame_type>(frame[4]) == frame_type::send_batch;
}

void store_entry_header(std::byte* at, std::size_t command, std::size_t payload) noexcept {
  base::store_le(at, static_cast<std::uint16_t>(command));
  base::store_le(at + 2, std::uint16_t{0});
  base::store_le(at + 4, static_cast<std::uint32_t>(payload));
}

}  // namespace

std::size_t batch_growth(std::span<const std::byte> frame, std::size_t command,
                         std::size_t payload) noexcept {
  return batch_entry_size(command, payload) + (is_batch(frame) ? 0 : batch_entry_header_size);
}

void append_to_batch(std::vector<std::byte>& out, std::size_t frame_start, std::string_view command,
                     std::span<const std::byte> payload, std::uint8_t flags) {
  if (!is_batch(std::span(out).subspan(frame_start))) {
    // The send's command and payload move down behind an entry header of their own; the header's
    // aux (the command length) moves into it, and the routing part stays where masters read it.
    std::byte entry[batch_entry_header_size];
    std::byte* const frame = out.data() + frame_start;
    const std::size_t command_size = base::load_le<std::uint16_t>(frame + 6);
    const std::size_t moved = out.size() - frame_start - message_header_size;
    store_entry_header(entry, command_size, moved - command_size);
    frame[4] = static_cast<std::byte>(frame_type::send_batch);
    base::store_le(frame + 6, std::uint16_t{0});
    base::store_le(frame + count_offset, std::uint32_t{1});
    const auto at = out.begin() + static_cast<std::ptrdiff_t>(frame_start + message_header_size);
    out.insert(at, entry, entry + batch_entry_header_size);
  }
  // This runs once per message a node sends: a small entry is put together here and appended in
  // one insert (a resize would zero-fill first, and an insert per part checks room three times).
  constexpr std::size_t assembled_max = 256;
  const std::size_t entry_size = batch_entry_size(command.size(), payload.size());
  const auto* text = reinterpret_cast<const std::byte*>(command.data());
  if (entry_size <= assembled_max) {
    std::byte entry[assembled_max];
    store_entry_header(entry, command.size(), payload.size());
    std::memcpy(entry + batch_entry_header_size, text, command.size());
    if (!payload.empty())
      std::memcpy(entry + batch_entry_header_size + command.size(), payload.data(), payload.size());
    out.insert(out.end(), entry, entry + entry_size);
  } else {
    std::byte entry[batch_entry_header_size];
    store_entry_header(entry, command.size(), payload.size());
    // No reserve(entry_size) here: `out` is the whole queue, and an exact reserve would
    // reallocate it for every large entry while it grows; the inserts grow it geometrically.
    out.insert(out.end(), entry, entry + batch_entry_header_size);
    out.insert(out.end(), text, text + command.size());
    out.insert(out.end(), payload.begin(), payload.end());
  }
  std::byte* const frame = out.data() + frame_start;
  frame[5] |= std::byte{flags};
  base::store_le(frame, static_cast<std::uint32_t>(out.size() - frame_start - 4));
  base::store_le(frame + count_offset, base::load_le<std::uint32_t>(frame + count_offset) + 1);
}

std::error_code check_batch(const frame_view& frame) noexcept {
  const auto bytes = frame.bytes;
  if (frame.header.type != frame_type::send_batch || frame.header.aux != 0 ||
      bytes.size() < message_header_size)
    return decode_error::bad_message;
  if (peek_dst(frame) == node_id{}) return decode_error::bad_message;
  std::uint32_t count = base::load_le<std::uint32_t>(bytes.data() + count_offset);
  if (count == 0) return decode_error::bad_message;
  auto rest = bytes.subspan(message_header_size);
  for (; count > 0; --count) {
    if (rest.size() < batch_entry_header_size) return decode_error::bad_message;
    const std::size_t command = base::load_le<std::uint16_t>(rest.data());
    const std::size_t payload = base::load_le<std::uint32_t>(rest.data() + 4);
    rest = rest.subspan(batch_entry_header_size);
    // Compared one at a time, so that no length can wrap a sum.
    if (command == 0 || command > limits::max_command_size || command > rest.size() ||
        payload > rest.size() - command)
      return decode_error::bad_message;
    const std::string_view text(reinterpret_cast<const char*>(rest.data()), command);
    if (!base::is_valid_utf8(text)) return decode_error::bad_message;
    rest = rest.subspan(command + payload);
  }
  return rest.empty() ? std::error_code{} : make_error_code(decode_error::bad_message);
}

batch_reader::batch_reader(const frame_view& frame) noexcept
    : rest_(frame.bytes.subspan(message_header_size)) {}

bool batch_reader::next(std::string_view& command, std::span<const std::byte>& payload) noexcept {
  if (rest_.size() < batch_entry_header_size) return false;
  const std::size_t command_size = base::load_le<std::uint16_t>(rest_.data());
  const std::size_t payload_size = base::load_le<std::uint32_t>(rest_.data() + 4);
  rest_ = rest_.subspan(batch_entry_header_size);
  command = std::string_view(reinterpret_cast<const char*>(rest_.data()), command_size);
  payload = rest_.subspan(command_size, payload_size);
  rest_ = rest_.subspan(command_size + payload_size);
  return true;
}

}  // namespace galaxies::wire
