// append_message as the hot path uses it: limits refuse cleanly, the output buffer is never left
// half-written, and a buffer with enough capacity sees no allocation at all.
#include <gtest/gtest.h>

#include "galaxies/error.hpp"
#include "support/counting_new.hpp"
#include "unit/wire_test_frames.hpp"
#include "wire/message.hpp"

using galaxies::test::allocation_count;

namespace galaxies::wire {
namespace {

using namespace galaxies::wire::test;

std::error_code append_send(std::vector<std::byte>& out, std::string_view command,
                            std::span<const std::byte> payload,
                            std::uint32_t max_frame_size = limits::default_max_frame_size) {
  return append_message(out, frame_type::send, node_a, node_b, 0, 0, command, payload,
                        max_frame_size);
}

TEST(WireMessage, RefusesATooLongCommandAndLeavesTheBufferAlone) {
  std::vector<std::byte> out = bytes({1, 2, 3});
  EXPECT_EQ(append_send(out, std::string(256, 'c'), {}), errc::too_large);
  EXPECT_EQ(hex(out), "01 02 03");

  ASSERT_FALSE(append_send(out, std::string(255, 'c'), {}));
  message_view m;
  ASSERT_FALSE(decode_message(parse_one(std::span(out).subspan(3)), m));
  EXPECT_EQ(m.command, std::string(255, 'c'));
}

TEST(WireMessage, RefusesAFrameOverTheMaximumAndLeavesTheBufferAlone) {
  constexpr std::uint32_t max = 4096;
  const std::vector<std::byte> fits(max - message_header_size - 4);
  const std::vector<std::byte> too_big(fits.size() + 1);
  std::vector<std::byte> out = bytes({9});

  EXPECT_EQ(append_send(out, "cmd!", too_big, max), errc::too_large);
  EXPECT_EQ(hex(out), "09");

  ASSERT_FALSE(append_send(out, "cmd!", fits, max));
  EXPECT_EQ(out.size(), 1 + max);
  const parse_result r = frame_parser(max).parse(std::span(out).subspan(1));
  ASSERT_EQ(r.state, parse_result::status::frame) << r.error.message();
  EXPECT_EQ(r.frame.bytes.size(), max);
}

TEST(WireMessage, RefusesFramesNoPeerWouldAccept) {
  std::vector<std::byte> out;
  const auto invalid = std::make_error_code(std::errc::invalid_argument);
  EXPECT_EQ(append_message(out, frame_type::reply, node_a, node_b, 1, 0, "cmd", {}, 4096), invalid);
  EXPECT_EQ(append_message(out, frame_type::send, node_a, node_b, 0, 0, "", {}, 4096), invalid);
  EXPECT_EQ(append_message(out, frame_type::request, node_a, node_b, 1, 0, "", {}, 4096), invalid);
  EXPECT_EQ(append_message(out, frame_type::heartbeat, node_a, node_b, 0, 0, "x", {}, 4096),
            invalid);
  EXPECT_TRUE(out.empty());
}

TEST(WireMessage, AppendsWithoutAllocatingWhenCapacitySuffices) {
  const std::vector<std::byte> payload(1000, std::byte{0x5a});
  std::vector<std::byte> out;
  out.reserve(64 * 1024);
  const std::size_t before = allocation_count.load();
  for (int i = 0; i < 20; ++i) ASSERT_FALSE(append_send(out, "tick", payload));
  EXPECT_EQ(allocation_count.load() - before, 0u);
  EXPECT_EQ(out.size(), 20 * message_frame_size(4, payload.size()));
}

TEST(WireMessage, AllocatesOnceWhenItMustGrow) {
  const std::vector<std::byte> payload(100000, std::byte{0x5a});
  std::vector<std::byte> out;
  const std::size_t before = allocation_count.load();
  ASSERT_FALSE(append_send(out, "tick", payload));
  EXPECT_EQ(allocation_count.load() - before, 1u);
}

TEST(WireMessage, DecodedViewsPointIntoTheFrame) {
  std::vector<std::byte> out;
  ASSERT_FALSE(append_send(out, "ping", bytes({7, 8, 9})));
  const frame_view frame = parse_one(out);
  message_view m;
  ASSERT_FALSE(decode_message(frame, m));
  EXPECT_EQ(reinterpret_cast<const std::byte*>(m.command.data()), out.data() + message_header_size);
  EXPECT_EQ(m.payload.data(), out.data() + message_header_size + 4);
  EXPECT_EQ(m.payload.size(), 3u);
}

TEST(WireMessage, RouterFieldsMatchTheSender) {
  const node_id src = node_id::random();
  const node_id dst = node_id::random();
  std::vector<std::byte> out;
  ASSERT_FALSE(append_message(out, frame_type::request, src, dst, 0xfedcba9876543210, 250, "op",
                              bytes("x"), limits::default_max_frame_size));
  const frame_view frame = parse_one(out);
  ASSERT_FALSE(check_message_frame(frame));
  EXPECT_EQ(peek_src(frame), src);
  EXPECT_EQ(peek_dst(frame), dst);
  EXPECT_EQ(peek_request_id(frame), 0xfedcba9876543210u);
}

}  // namespace
}  // namespace galaxies::wire
