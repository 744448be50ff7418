// Message frames: send, request, reply, broadcast (docs/protocol.md §4).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

#include "galaxies/ids.hpp"
#include "wire/frame.hpp"

namespace galaxies::wire {

// The fixed part: frame header + src, dst, id, word, reserved.
inline constexpr std::size_t message_header_size = 56;

struct message_view {
  frame_type type{};
  node_id src;
  node_id dst;
  std::uint64_t request_id = 0;
  std::uint32_t word = 0;  // request: timeout ms; reply: status; otherwise 0
  std::string_view command;
  std::span<const std::byte> payload;
};

// Full decode, with validation: command length within the frame and within limits, valid UTF-8;
// request id nonzero on requests and replies. Not for a send_batch (message_batch.hpp) nor a
// publish (groups.hpp).
std::error_code decode_message(const frame_view& frame, message_view& out) noexcept;

// What a master checks of a message frame's body on arrival (protocol.md §4): decode_message's
// rules, check_batch's for a send_batch, decode_publish's for a publish.
std::error_code check_message_body(const frame_view& frame) noexcept;

// Routing fast path: a router reads only these fields; the parser has already checked the frame is
// a message type, and decode_message-level validation is the receiver's job.
// Length >= fixed part, aux ok: the checks the parser applies to every message frame.
std::error_code check_message_frame(const frame_view& frame) noexcept;
node_id peek_src(const frame_view& frame) noexcept;
node_id peek_dst(const frame_view& frame) noexcept;
std::uint64_t peek_request_id(const frame_view& frame) noexcept;
std::uint32_t peek_word(const frame_view& frame) noexcept;  // request: timeout ms; reply: status
// Rewrites the word of an encoded message frame (a requester's request that waited: the time it
// has left). Nothing for bytes too short to be one.
void poke_word(std::span<std::byte> frame, std::uint32_t word) noexcept;

// Bytes a message frame with this command and payload takes on the wire.
inline constexpr std::size_t message_frame_size(std::size_t command, std::size_t payload) noexcept {
  return message_header_size + command + payload;
}

// Appends one complete message frame to `out`. Fails with errc::too_large (leaving `out` untouched)
// when the frame would exceed max_frame_size or the command exceeds limits::max_command_size.
// Fails with std::errc::invalid_argument (leaving `out` untouched) for a frame no peer would
// accept: a type that is not a message, an empty command on send/request/broadcast, a command on a
// reply. Hot path: grows `out` once (no allocation at all when its capacity suffices) and copies.
// `flags`: flag_blocked, flag_from_master (§4.1).
std::error_code append_message(std::vector<std::byte>& out, frame_type type, const node_id& src,
                               const node_id& dst, std::uint64_t request_id, std::uint32_t word,
                               std::string_view command, std::span<const std::byte> payload,
                               std::uint32_t max_frame_size, std::uint8_t flags = 0);

}  // namespace galaxies::wire
