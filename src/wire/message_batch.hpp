// send_batch frames: several sends from one node to another in one frame (docs/protocol.md §4.2).
// A sender grows a batch in place at the end of its queue; a receiver reads its messages in order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

#include "wire/frame.hpp"

namespace galaxies::wire {

// Each message's own header: u16 command length, u16 reserved, u32 payload length.
inline constexpr std::size_t batch_entry_header_size = 8;

inline constexpr std::size_t batch_entry_size(std::size_t command, std::size_t payload) noexcept {
  return batch_entry_header_size + command + payload;
}

// The bytes a message of `command` and `payload` adds to `frame`, a send or a send_batch: its
// entry, and for a send the entry header of the message already there, which becomes a batch.
std::size_t batch_growth(std::span<const std::byte> frame, std::size_t command,
                         std::size_t payload) noexcept;

// Adds a message to the frame that starts at `frame_start` and ends `out`, a send or a send_batch
// (a send becomes a batch of two), and sets `flags` on it besides those it has. The caller has
// checked what append_message would (the frame stays within max_frame_size, the command is 1 to
// max_command_size bytes) and debited batch_growth() of credit: `out` grows by exactly that.
void append_to_batch(std::vector<std::byte>& out, std::size_t frame_start, std::string_view command,
                     std::span<const std::byte> payload, std::uint8_t flags);

// Whether a send_batch's body is well formed: a destination, a count of at least one, messages
// that fill the frame exactly, each command 1 to max_command_size bytes of valid UTF-8. The parser
// has already run check_message_frame.
std::error_code check_batch(const frame_view& frame) noexcept;

// The messages of a batch that check_batch accepted, in order.
class batch_reader {
 public:
  explicit batch_reader(const frame_view& frame) noexcept;
  bool next(std::string_view& command, std::span<const std::byte>& payload) noexcept;

 private:
  std::span<const std::byte> rest_;
};

}  // namespace galaxies::wire
