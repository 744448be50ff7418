// Frame layout and the sans-I/O frame parser (docs/protocol.md §2). Knows no sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>

#include "base/limits.hpp"

namespace galaxies::wire {

enum class frame_type : std::uint8_t {
  hello = 0x01,
  welcome = 0x02,
  refuse = 0x03,
  heartbeat = 0x04,
  goodbye = 0x05,
  auth_challenge = 0x06,
  auth_proof = 0x07,
  probe = 0x08,  // a link's round-trip probe (protocol.md §8.2)
  probe_reply = 0x09,
  stopping = 0x0A,  // master -> worker: drain, then leave within the grace (protocol.md §5.2)
  nodes_up = 0x10,
  nodes_down = 0x11,
  hosts_up = 0x12,
  hosts_down = 0x13,
  groups_up = 0x14,  // a node's joins (protocol.md §5.1)
  groups_down = 0x15,
  send = 0x20,
  request = 0x21,
  reply = 0x22,
  broadcast = 0x23,
  credit = 0x24,
  fragment = 0x25,
  send_batch = 0x26,
  publish = 0x27,  // to a group's members on one host (protocol.md §4.3)
  status_request = 0x30,
  status_reply = 0x31,
  watch_request = 0x32,  // an observer asks for membership events as they happen
  watch_event = 0x33,
};

bool is_known(std::uint8_t type) noexcept;
// A `fragment` frame carries the next slice of one larger frame (protocol.md §2.1); its header,
// written by the sender's link for `slice` bytes that follow it.
void store_fragment_header(std::byte* out, std::size_t slice) noexcept;
// send, request, reply, broadcast, send_batch, publish: frames with a message's fixed part, its
// src where a master checks it (inline: asked of every frame at every hop)
inline constexpr bool is_message(frame_type type) noexcept {
  switch (type) {
    case frame_type::send:
    case frame_type::request:
    case frame_type::reply:
    case frame_type::broadcast:
    case frame_type::send_batch:
    case frame_type::publish:
      return true;
    default:
      return false;
  }
}
const char* to_string(frame_type type) noexcept;

inline constexpr std::size_t header_size = 8;
inline constexpr std::size_t min_size_field = 4;  // type + flags + aux

inline constexpr std::uint8_t flag_snapshot = 0x01;  // nodes_up / hosts_up / groups_up
// Message frames (docs/protocol.md §4.1): the sender waited for credit on this pair since its last
// frame to the same receiver (asks for a larger window); a reply a master wrote itself.
inline constexpr std::uint8_t flag_blocked = 0x02;
inline constexpr std::uint8_t flag_from_master = 0x04;

struct frame_header {
  std::uint32_t size = 0;  // bytes after the size field
  frame_type type{};
  std::uint8_t flags = 0;
  std::uint16_t aux = 0;

  std::size_t total() const noexcept { return std::size_t{size} + 4; }
};

// One complete frame inside the caller's buffer; valid while that buffer is.
struct frame_view {
  frame_header header;
  std::span<const std::byte> bytes;  // the whole frame, header included

  std::span<const std::byte> body() const noexcept { return bytes.subspan(header_size); }
};

// Errors of the wire layer: malformed input. One category for the layer.
enum class decode_error {
  frame_too_small = 1,  // size field below 4
  frame_too_large,      // size + 4 above the negotiated maximum frame size
  unknown_type,
  bad_message,     // message frame shorter than its fixed part, or command length out of range
  bad_handshake,   // hello/welcome/refuse body malformed, bad magic, missing required record
  bad_membership,  // nodes/hosts frame count disagrees with its length, or too many entries
  bad_body,        // a frame whose body must have a fixed size does not
};

const std::error_category& wire_category() noexcept;
inline std::error_code make_error_code(decode_error e) noexcept {
  return {static_cast<int>(e), wire_category()};
}

struct parse_result {
  enum class status { need_more, frame, error };
  status state = status::need_more;
  frame_view frame;       // state == frame
  std::error_code error;  // state == error
  std::size_t needed =
      0;  // state == need_more: total bytes the frame needs (0 = header incomplete)
};

// A pure, incremental parser: the caller keeps whatever bytes arrived so far and asks again when
// more arrive. It validates the fixed header as soon as it is complete, before the body exists,
// so an oversized or unknown frame is refused without waiting for (or allocating) its body.
class frame_parser {
 public:
  explicit frame_parser(std::uint32_t max_frame_size = limits::default_max_frame_size) noexcept
      : max_frame_size_(max_frame_size) {}

  parse_result parse(std::span<const std::byte> input) const noexcept;

  std::uint32_t max_frame_size() const noexcept { return max_frame_size_; }
  void set_max_frame_size(std::uint32_t value) noexcept { max_frame_size_ = value; }

 private:
  std::uint32_t max_frame_size_;
};

}  // namespace galaxies::wire

template <>
struct std::is_error_code_enum<galaxies::wire::decode_error> : std::true_type {};
