// What the link tests share: frames whose bytes show a reordered, lost or torn frame, cutting
// what a peer received back into frames, and a sink that records what a link hands over and
// checks the sink contract on the way.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include "base/limits.hpp"
#include "galaxies/ids.hpp"
#include "transport/close_reason.hpp"
#include "transport/frame_sink.hpp"
#include "wire/frame.hpp"
#include "wire/message.hpp"

namespace galaxies::transport::link_support {

using frame_bytes = std::vector<std::byte>;

inline const node_id src_node(uuid({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}));
inline const node_id dst_node(uuid({17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
                                    32}));

// A send frame whose payload depends on `seq`, so that a reordered, lost or torn frame shows.
inline frame_bytes message_frame(std::uint32_t seq, std::size_t payload_size) {
  frame_bytes payload(payload_size);
  for (std::size_t i = 0; i < payload_size; ++i)
    payload[i] = static_cast<std::byte>((seq * 131 + i * 7) & 0xff);
  frame_bytes out;
  const auto ec = wire::append_message(out, wire::frame_type::send, src_node, dst_node, 0, seq,
                                       "seq", payload, limits::default_max_frame_size);
  EXPECT_FALSE(ec) << ec.message();
  return out;
}

// A frame of exactly `total` bytes (total >= 59).
inline frame_bytes frame_of_size(std::uint32_t seq, std::size_t total) {
  return message_frame(seq, total - wire::message_frame_size(3, 0));
}

inline frame_bytes concat(const std::vector<frame_bytes>& frames) {
  frame_bytes out;
  for (const auto& f : frames) out.insert(out.end(), f.begin(), f.end());
  return out;
}

// What a raw peer received, cut into frames; fails the test on a torn or invalid frame.
inline std::vector<frame_bytes> split_frames(std::span<const std::byte> bytes) {
  std::vector<frame_bytes> frames;
  const wire::frame_parser parser;
  while (!bytes.empty()) {
    const auto r = parser.parse(bytes);
    if (r.state != wire::parse_result::status::frame) {
      ADD_FAILURE() << "not a whole, valid frame at the end of what the link wrote";
      break;
    }
    frames.emplace_back(r.frame.bytes.begin(), r.frame.bytes.end());
    bytes = bytes.subspan(r.frame.bytes.size());
  }
  return frames;
}

// Records what a link hands over and checks the sink contract on the way: no frame after the
// close, the close exactly once (checked by the tests) and never from inside on_frame.
struct recording_sink final : frame_sink {
  std::vector<frame_bytes> frames;
  std::vector<std::pair<close_reason, std::error_code>> closes;
  std::function<void(const wire::frame_view&)> hook;  // runs inside on_frame
  bool in_on_frame = false;

  void on_frame(const wire::frame_view& frame) override {
    EXPECT_TRUE(closes.empty()) << "a frame after on_closed";
    EXPECT_NE(frame.header.type, wire::frame_type::heartbeat) << "heartbeats are the link's own";
    frames.emplace_back(frame.bytes.begin(), frame.bytes.end());
    in_on_frame = true;
    if (hook) hook(frame);
    in_on_frame = false;
  }
  void on_closed(close_reason reason, std::error_code error) override {
    EXPECT_FALSE(in_on_frame) << "on_closed re-entered the sink from inside on_frame";
    closes.emplace_back(reason, error);
  }
  void on_drained() override {
    EXPECT_FALSE(in_on_frame) << "on_drained from inside on_frame";
    ++drained;
  }
  int drained = 0;
  bool closed() const { return !closes.empty(); }
};

}  // namespace galaxies::transport::link_support
