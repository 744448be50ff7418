// The incremental parser as a reader uses it: bytes arrive in arbitrary pieces, the reader keeps
// what it has and asks again. Every golden frame is fed whole, byte by byte and split at every
// offset; a stream of them is fed in pieces of every size. Bad headers are refused from the header
// alone.
#include <gtest/gtest.h>

#include <cstring>

#include "base/endian.hpp"
#include "unit/wire_test_frames.hpp"
#include "wire/frame.hpp"
#include "wire/message.hpp"

namespace galaxies::wire {
namespace {

using namespace galaxies::wire::test;
using status = parse_result::status;

// What a reader does: append what arrived, take every complete frame, keep the rest.
struct stream_reader {
  frame_parser parser;
  std::vector<std::byte> buffer;
  std::vector<std::vector<std::byte>> frames;
  std::error_code error;

  void feed(std::span<const std::byte> piece) {
    append(buffer, piece);
    std::size_t used = 0;
    while (!error) {
      const parse_result r = parser.parse(std::span(buffer).subspan(used));
      if (r.state == status::need_more) break;
      if (r.state == status::error) {
        error = r.error;
        break;
      }
      frames.emplace_back(r.frame.bytes.begin(), r.frame.bytes.end());
      used += r.frame.bytes.size();
    }
    buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(used));
  }
};

std::vector<std::byte> header(std::uint32_t size, std::uint8_t type, std::uint16_t aux = 0) {
  std::vector<std::byte> out(header_size);
  base::store_le(out.data(), size);
  base::store_le(out.data() + 4, type);
  base::store_le(out.data() + 6, aux);
  return out;
}

std::error_code parse_error(std::span<const std::byte> input,
                            std::uint32_t max_frame_size = limits::default_max_frame_size) {
  const parse_result r = frame_parser(max_frame_size).parse(input);
  EXPECT_EQ(r.state, status::error);
  return r.error;
}

// Checks what arrived of a frame of `full_size` bytes: incomplete input asks for more, and says how
// much once the header is there, so that a reader can size its buffer.
void expect_arrived(std::size_t full_size, std::span<const std::byte> arrived) {
  const parse_result r = frame_parser().parse(arrived);
  if (arrived.size() == full_size) {
    ASSERT_EQ(r.state, status::frame) << r.error.message();
    EXPECT_EQ(r.frame.bytes.data(), arrived.data());
    EXPECT_EQ(r.frame.bytes.size(), full_size);
    return;
  }
  ASSERT_EQ(r.state, status::need_more) << "at " << arrived.size() << ": " << r.error.message();
  EXPECT_EQ(r.needed, arrived.size() < header_size ? 0 : full_size) << "at " << arrived.size();
}

TEST(WireParser, ParsesEveryGoldenFrameWhole) {
  for (const golden_frame& g : golden_frames()) {
    SCOPED_TRACE(g.name);
    const parse_result r = frame_parser().parse(*g.bytes);
    ASSERT_EQ(r.state, status::frame) << r.error.message();
    EXPECT_EQ(r.frame.header.type, g.type);
    EXPECT_EQ(r.frame.header.total(), g.bytes->size());
    EXPECT_EQ(r.frame.bytes.size(), g.bytes->size());
    EXPECT_EQ(r.frame.body().size(), g.bytes->size() - header_size);
  }
}

TEST(WireParser, ParsesEveryGoldenFrameByteByByte) {
  for (const golden_frame& g : golden_frames()) {
    SCOPED_TRACE(g.name);
    std::vector<std::byte> arrived;
    expect_arrived(g.bytes->size(), arrived);
    for (std::byte b : *g.bytes) {
      arrived.push_back(b);
      expect_arrived(g.bytes->size(), arrived);
    }
  }
}

TEST(WireParser, ParsesEveryGoldenFrameSplitAtEveryOffset) {
  for (const golden_frame& g : golden_frames()) {
    SCOPED_TRACE(g.name);
    for (std::size_t cut = 0; cut <= g.bytes->size(); ++cut) {
      SCOPED_TRACE(cut);
      stream_reader reader;
      reader.feed(std::span(*g.bytes).first(cut));
      EXPECT_EQ(reader.frames.size(), cut == g.bytes->size() ? 1u : 0u);
      reader.feed(std::span(*g.bytes).subspan(cut));
      ASSERT_FALSE(reader.error) << reader.error.message();
      ASSERT_EQ(reader.frames.size(), 1u);
      EXPECT_EQ(hex(reader.frames[0]), hex(*g.bytes));
      EXPECT_TRUE(reader.buffer.empty());
    }
  }
}

TEST(WireParser, ParsesFramesBackToBackInOneBuffer) {
  std::vector<std::byte> stream;
  for (const golden_frame& g : golden_frames()) append(stream, *g.bytes);

  frame_parser parser;
  std::size_t used = 0;
  for (const golden_frame& g : golden_frames()) {
    SCOPED_TRACE(g.name);
    const parse_result r = parser.parse(std::span(stream).subspan(used));
    ASSERT_EQ(r.state, status::frame) << r.error.message();
    EXPECT_EQ(r.frame.header.type, g.type);
    EXPECT_EQ(hex(r.frame.bytes), hex(*g.bytes));
    used += r.frame.bytes.size();
  }
  EXPECT_EQ(used, stream.size());
  EXPECT_EQ(parser.parse(std::span(stream).subspan(used)).state, status::need_more);
}

TEST(WireParser, ParsesAStreamFedInPiecesOfEverySize) {
  std::vector<std::byte> stream;
  for (int round = 0; round < 2; ++round) {
    for (const golden_frame& g : golden_frames()) append(stream, *g.bytes);
  }
  for (std::size_t piece = 1; piece <= stream.size(); ++piece) {
    SCOPED_TRACE(piece);
    stream_reader reader;
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      reader.feed(std::span(stream).subspan(at, std::min(piece, stream.size() - at)));
    }
    ASSERT_FALSE(reader.error) << reader.error.message();
    ASSERT_EQ(reader.frames.size(), 2 * golden_frames().size());
    for (std::size_t i = 0; i < reader.frames.size(); ++i) {
      EXPECT_EQ(hex(reader.frames[i]), hex(*golden_frames()[i % golden_frames().size()].bytes));
    }
    EXPECT_TRUE(reader.buffer.empty());
  }
}

TEST(WireParser, ATruncatedFrameStaysIncomplete) {
  // A reader that hits EOF here knows it was inside a frame, and how far from its end.
  for (const golden_frame& g : golden_frames()) {
    SCOPED_TRACE(g.name);
    const std::span<const std::byte> arrived = std::span(*g.bytes).first(g.bytes->size() - 1);
    const parse_result r = frame_parser().parse(arrived);
    ASSERT_EQ(r.state, status::need_more);
    EXPECT_EQ(r.needed, arrived.size() < header_size ? 0 : g.bytes->size());
  }
}

TEST(WireParser, RefusesASizeBelowFourFromTheHeader) {
  for (std::uint32_t size = 0; size < 4; ++size) {
    EXPECT_EQ(parse_error(header(size, 0x04)), decode_error::frame_too_small) << size;
  }
}

TEST(WireParser, RefusesAnOversizedFrameFromTheHeaderAlone) {
  const std::uint32_t max = limits::default_max_frame_size;
  // Only the 8 header bytes exist: the body is neither awaited nor buffered.
  EXPECT_EQ(parse_error(header(max - 3, 0x20, 4)), decode_error::frame_too_large);
  EXPECT_EQ(parse_error(header(0xffffffff, 0x20, 4)), decode_error::frame_too_large);

  const parse_result largest = frame_parser().parse(header(max - 4, 0x20, 4));
  ASSERT_EQ(largest.state, status::need_more);
  EXPECT_EQ(largest.needed, max);
}

TEST(WireParser, AppliesTheNegotiatedMaximum) {
  frame_parser parser(4096);
  EXPECT_EQ(parser.max_frame_size(), 4096u);
  EXPECT_EQ(parser.parse(header(4093, 0x31)).error, decode_error::frame_too_large);
  EXPECT_EQ(parser.parse(header(4092, 0x31)).needed, 4096u);

  parser.set_max_frame_size(8192);
  EXPECT_EQ(parser.parse(header(4093, 0x31)).state, status::need_more);
}

TEST(WireParser, RefusesAnUnknownTypeFromTheHeader) {
  int known = 0;
  for (int type = 0; type < 256; ++type) {
    const auto t = static_cast<std::uint8_t>(type);
    if (is_known(t)) {
      ++known;
      continue;
    }
    EXPECT_EQ(parse_error(header(100, t)), decode_error::unknown_type) << type;
  }
  EXPECT_EQ(known, 28);  // the table of protocol.md §2
}

TEST(WireParser, RefusesGarbage) {
  // A stray HTTP client: "GET " read as a size is far above any maximum.
  EXPECT_EQ(parse_error(bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), decode_error::frame_too_large);
  EXPECT_EQ(parse_error(bytes({0, 0, 0, 0, 0, 0, 0, 0})), decode_error::frame_too_small);
  EXPECT_EQ(parse_error(bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})),
            decode_error::frame_too_large);
  EXPECT_EQ(parse_error(bytes({0x10, 0, 0, 0, 0x99, 0, 0, 0})), decode_error::unknown_type);
}

TEST(WireParser, ReportsErrorsInTheWireCategory) {
  const std::error_code ec = decode_error::unknown_type;
  EXPECT_EQ(ec.category(), wire_category());
  EXPECT_STREQ(wire_category().name(), "galaxies.wire");
  EXPECT_NE(ec.message().find("unknown frame type"), std::string::npos);
}

TEST(WireParser, ChecksAMessageFrameOnceItIsWhole) {
  // A send whose size leaves no room for the fixed part: incomplete first, then refused.
  std::vector<std::byte> frame = header(4 + 40, 0x20, 1);
  frame.resize(4 + 44);
  EXPECT_EQ(frame_parser().parse(std::span(frame).first(20)).state, status::need_more);
  EXPECT_EQ(parse_error(frame), decode_error::bad_message);
}

std::vector<std::byte> message(std::uint8_t type, std::uint16_t aux, std::size_t rest) {
  std::vector<std::byte> frame =
      header(static_cast<std::uint32_t>(message_header_size - 4 + rest), type, aux);
  frame.resize(message_header_size + rest);
  base::store_le<std::uint64_t>(frame.data() + 40, 7);  // a request id, for request and reply
  return frame;
}

TEST(WireParser, ChecksTheCommandLength) {
  EXPECT_EQ(parse_error(message(0x20, 256, 300)), decode_error::bad_message) << "over 255";
  EXPECT_EQ(frame_parser().parse(message(0x20, 255, 300)).state, status::frame);
  EXPECT_EQ(parse_error(message(0x20, 10, 9)), decode_error::bad_message) << "past the frame";
  EXPECT_EQ(frame_parser().parse(message(0x20, 10, 10)).state, status::frame);
}

TEST(WireParser, ChecksCommandPresenceByMessageType) {
  EXPECT_EQ(parse_error(message(0x22, 1, 5)), decode_error::bad_message) << "reply with a command";
  EXPECT_EQ(frame_parser().parse(message(0x22, 0, 5)).state, status::frame);
  for (std::uint8_t type : {0x20, 0x21, 0x23}) {
    EXPECT_EQ(parse_error(message(type, 0, 5)), decode_error::bad_message) << int{type};
    EXPECT_EQ(frame_parser().parse(message(type, 1, 5)).state, status::frame) << int{type};
  }
}

TEST(WireParser, ChecksFixedSizeBodies) {
  std::vector<std::byte> heartbeat = header(5, 0x04);
  heartbeat.push_back(std::byte{0});
  EXPECT_EQ(parse_error(heartbeat), decode_error::bad_body);
  // A heartbeat is empty or carries the sender's lateness, a u32 (protocol.md §8.1).
  for (std::uint32_t body : {2u, 3u, 5u, 8u}) {
    std::vector<std::byte> odd = header(4 + body, 0x04);
    odd.resize(wire::header_size + body);
    EXPECT_EQ(parse_error(odd), decode_error::bad_body) << "heartbeat body of " << body;
  }
  std::vector<std::byte> with_lateness = header(8, 0x04);
  with_lateness.resize(wire::header_size + 4);
  EXPECT_EQ(frame_parser().parse(with_lateness).state, status::frame);

  std::vector<std::byte> status_request = header(6, 0x30);
  status_request.resize(10);
  EXPECT_EQ(parse_error(status_request), decode_error::bad_body);
  for (const std::uint8_t type : {0x08, 0x09}) {
    std::vector<std::byte> probe = header(8, type);
    probe.resize(12);
    EXPECT_EQ(parse_error(probe), decode_error::bad_body) << "a probe's token is 8 bytes";
  }
  for (const std::uint32_t body : {0u, 3u, 5u, 8u}) {
    std::vector<std::byte> stopping = header(4 + body, 0x0a);
    stopping.resize(wire::header_size + body);
    EXPECT_EQ(parse_error(stopping), decode_error::bad_body) << "stopping body of " << body;
  }
  std::vector<std::byte> watch_request = header(5, 0x32);
  watch_request.resize(9);
  EXPECT_EQ(parse_error(watch_request), decode_error::bad_body);

  EXPECT_EQ(parse_error(header(4, 0x05)), decode_error::bad_body) << "goodbye without reason";
  std::vector<std::byte> goodbye = header(6, 0x05);
  goodbye.resize(10, std::byte{4});
  EXPECT_EQ(parse_error(goodbye), decode_error::bad_body) << "goodbye with two bytes";
}

TEST(WireParser, StopsAtTheFirstFrameAndIgnoresWhatFollows) {
  std::vector<std::byte> input = golden_heartbeat;
  append(input, bytes({0xff, 0xff, 0xff}));
  const parse_result r = frame_parser().parse(input);
  ASSERT_EQ(r.state, status::frame);
  EXPECT_EQ(r.frame.bytes.size(), golden_heartbeat.size());
}

TEST(WireParser, KnowsWhichTypesAreMessages) {
  for (const golden_frame& g : golden_frames()) {
    const bool expected = g.type == frame_type::send || g.type == frame_type::request ||
                          g.type == frame_type::reply || g.type == frame_type::broadcast ||
                          g.type == frame_type::send_batch || g.type == frame_type::publish;
    EXPECT_EQ(is_message(g.type), expected) << g.name;
    EXPECT_TRUE(is_known(static_cast<std::uint8_t>(g.type))) << g.name;
  }
}

}  // namespace
}  // namespace galaxies::wire
