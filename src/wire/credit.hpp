// Credit frames: end-to-end flow control between two nodes (docs/protocol.md §4.1). A receiving
// node grants each sender bytes as it consumes their frames; masters route the grant to the
// sender by its header, like a message, and keep no state about it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <system_error>
#include <vector>

#include "galaxies/ids.hpp"
#include "wire/frame.hpp"

namespace galaxies::wire {

// Header + src + dst + u32 grant + u32 window: the grant shares the message frames' offsets for
// src and dst, so a master routes both with peek_src / peek_dst.
inline constexpr std::size_t credit_frame_size = header_size + 16 + 16 + 4 + 4;

struct credit_grant {
  node_id src;               // the receiving node that grants
  node_id dst;               // the sending node it grants to
  std::uint32_t grant = 0;   // bytes added to what dst may have in flight to src
  std::uint32_t window = 0;  // the pair's window from now on: dst never holds more credit than this
  friend bool operator==(const credit_grant&, const credit_grant&) = default;
};

void append_credit(std::vector<std::byte>& out, const credit_grant& c);
// bad_body for another frame type, a body that is not 40 bytes, or a window of zero.
std::error_code decode_credit(const frame_view& frame, credit_grant& out) noexcept;

}  // namespace galaxies::wire
