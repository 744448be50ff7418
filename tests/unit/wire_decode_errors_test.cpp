// Decoders against malformed bodies: each must answer with the right decode_error (the reason a
// connection is closed and logged with), never read past the frame, never throw.
#include <gtest/gtest.h>

#include "base/endian.hpp"
#include "unit/wire_test_frames.hpp"
#include "wire/control.hpp"
#include "wire/message.hpp"

namespace galaxies::wire {
namespace {

using namespace galaxies::wire::test;

// A frame holding a whole `body`, its size field consistent with it.
std::vector<std::byte> frame_of(frame_type type, std::span<const std::byte> body,
                                std::uint8_t flags = 0, std::uint16_t aux = 0) {
  std::vector<std::byte> out(header_size);
  base::store_le(out.data(), static_cast<std::uint32_t>(body.size() + 4));
  base::store_le(out.data() + 4, static_cast<std::uint8_t>(type));
  base::store_le(out.data() + 5, flags);
  base::store_le(out.data() + 6, aux);
  append(out, body);
  return out;
}

std::vector<std::byte> body_of(const std::vector<std::byte>& frame) {
  return {frame.begin() + header_size, frame.end()};
}

// The frame must pass the parser (the decoder is what is under test), with room for big ones.
frame_view whole(const std::vector<std::byte>& frame) {
  const parse_result r = frame_parser(256u << 20).parse(frame);
  EXPECT_EQ(r.state, parse_result::status::frame) << r.error.message();
  return r.frame;
}

std::error_code hello_error(const std::vector<std::byte>& frame) {
  hello h;
  return decode_hello(whole(frame), h);
}

std::error_code nodes_up_error(const std::vector<std::byte>& frame) {
  std::vector<node_entry> nodes;
  bool snapshot = false;
  return decode_nodes_up(whole(frame), nodes, snapshot);
}

std::error_code nodes_down_error(const std::vector<std::byte>& frame) {
  std::vector<node_down_entry> nodes;
  return decode_nodes_down(whole(frame), nodes);
}

std::error_code hosts_up_error(const std::vector<std::byte>& frame) {
  std::vector<host_entry> hosts;
  bool snapshot = false;
  return decode_hosts_up(whole(frame), hosts, snapshot);
}

std::error_code hosts_down_error(const std::vector<std::byte>& frame) {
  std::vector<host_down_entry> hosts;
  return decode_hosts_down(whole(frame), hosts);
}

// The golden hello's fixed part (44 bytes) followed by the given records.
std::vector<std::byte> hello_with_records(std::span<const std::byte> records,
                                          std::uint8_t role_value = 2) {
  std::vector<std::byte> body = body_of(golden_hello);
  body.resize(44);
  body[6] = std::byte{role_value};
  append(body, records);
  return frame_of(frame_type::hello, body);
}

std::vector<std::byte> record(std::uint16_t tag, std::string_view value) {
  std::vector<std::byte> out(4);
  base::store_le(out.data(), tag);
  base::store_le(out.data() + 2, static_cast<std::uint16_t>(value.size()));
  append(out, bytes(value));
  return out;
}

std::vector<std::byte> concat(std::initializer_list<std::vector<std::byte>> parts) {
  std::vector<std::byte> out;
  for (const auto& part : parts) append(out, part);
  return out;
}

// Replaces the u32 count that starts every membership body.
std::vector<std::byte> with_count(std::vector<std::byte> frame, std::uint32_t count) {
  base::store_le(frame.data() + header_size, count);
  return frame;
}

TEST(WireDecodeErrors, HelloTruncatedBody) {
  for (std::size_t length = 0; length < 44; ++length) {
    const std::vector<std::byte> body = body_of(golden_hello);
    EXPECT_EQ(hello_error(frame_of(frame_type::hello, std::span(body).first(length))),
              decode_error::bad_handshake)
        << length;
  }
}

TEST(WireDecodeErrors, HelloBadMagic) {
  std::vector<std::byte> frame = golden_hello;
  frame[header_size + 3] = std::byte{'Z'};
  EXPECT_EQ(hello_error(frame), decode_error::bad_handshake);
}

TEST(WireDecodeErrors, HelloRoleOutOfRange) {
  const auto cluster = record(1, "prod");
  EXPECT_EQ(hello_error(hello_with_records(cluster, 0)), decode_error::bad_handshake);
  EXPECT_EQ(hello_error(hello_with_records(cluster, 5)), decode_error::bad_handshake);
  EXPECT_FALSE(hello_error(hello_with_records(cluster, 4)));
}

TEST(WireDecodeErrors, HelloMissingClusterRecord) {
  EXPECT_EQ(hello_error(hello_with_records({})), decode_error::bad_handshake);
  EXPECT_EQ(hello_error(hello_with_records(record(5, "h1"))), decode_error::bad_handshake);
}

TEST(WireDecodeErrors, HelloClusterLengthOutOfRange) {
  EXPECT_EQ(hello_error(hello_with_records(record(1, ""))), decode_error::bad_handshake);
  EXPECT_EQ(hello_error(hello_with_records(record(1, std::string(65, 'c')))),
            decode_error::bad_handshake);
  EXPECT_FALSE(hello_error(hello_with_records(record(1, std::string(64, 'c')))));
}

TEST(WireDecodeErrors, HelloFromAHostWithoutListen) {
  EXPECT_EQ(hello_error(hello_with_records(record(1, "prod"), 1)), decode_error::bad_handshake);
  EXPECT_FALSE(
      hello_error(hello_with_records(concat({record(1, "prod"), record(2, "10.0.0.1:1")}), 1)));
}

TEST(WireDecodeErrors, HelloRecordOverrunningTheBody) {
  std::vector<std::byte> overrun = record(5, "hostname");
  overrun.pop_back();
  EXPECT_EQ(hello_error(hello_with_records(concat({record(1, "prod"), overrun}))),
            decode_error::bad_handshake);
  // A record header cut short.
  EXPECT_EQ(hello_error(hello_with_records(concat({record(1, "prod"), bytes({0x05, 0x00})}))),
            decode_error::bad_handshake);
  // An unknown record whose length runs past the end must not be skipped blindly either.
  std::vector<std::byte> unknown = record(0x99, "xy");
  unknown.pop_back();
  EXPECT_EQ(hello_error(hello_with_records(concat({record(1, "prod"), unknown}))),
            decode_error::bad_handshake);
}

TEST(WireDecodeErrors, HelloRepeatedOrMisSizedRecords) {
  EXPECT_EQ(hello_error(hello_with_records(concat({record(1, "prod"), record(1, "test")}))),
            decode_error::bad_handshake);
  EXPECT_EQ(hello_error(hello_with_records(concat({record(1, "prod"), record(3, "ab")}))),
            decode_error::bad_handshake)
      << "max_frame is a u32";
  EXPECT_EQ(hello_error(hello_with_records(concat({record(1, "prod"), record(4, "abcde")}))),
            decode_error::bad_handshake)
      << "heartbeat_ms is a u32";
  const std::string tiny_max_frame("\x00\x01\x00\x00", 4);  // 256 bytes: below the floor
  EXPECT_EQ(hello_error(hello_with_records(concat({record(1, "prod"), record(3, tiny_max_frame)}))),
            decode_error::bad_handshake);
}

TEST(WireDecodeErrors, HelloSkipsUnknownRecords) {
  std::vector<std::byte> frame = golden_hello;
  append(frame, record(0x99, "a feature from the future"));
  append(frame, record(0, ""));
  base::store_le(frame.data(), static_cast<std::uint32_t>(frame.size() - 4));
  hello with_unknown;
  hello plain;
  ASSERT_FALSE(decode_hello(whole(frame), with_unknown));
  ASSERT_FALSE(decode_hello(whole(golden_hello), plain));
  EXPECT_EQ(with_unknown, plain);
}

TEST(WireDecodeErrors, HelloWithAnotherVersionStillDecodes) {
  std::vector<std::byte> frame = golden_hello;
  frame[header_size + 4] = std::byte{2};
  hello h;
  ASSERT_FALSE(decode_hello(whole(frame), h));
  EXPECT_EQ(h.version, 2);
  EXPECT_EQ(h.cluster, "prod");
}

TEST(WireDecodeErrors, WelcomeTruncatedOrOverrun) {
  const std::vector<std::byte> body = body_of(golden_welcome);
  welcome w;
  for (std::size_t length = 0; length < 24; ++length) {
    EXPECT_EQ(
        decode_welcome(whole(frame_of(frame_type::welcome, std::span(body).first(length))), w),
        decode_error::bad_handshake)
        << length;
  }
  // Cutting the body inside its last record leaves a record that overruns it.
  EXPECT_EQ(decode_welcome(
                whole(frame_of(frame_type::welcome, std::span(body).first(body.size() - 1))), w),
            decode_error::bad_handshake);
  // Welcome has no required record.
  ASSERT_FALSE(decode_welcome(whole(frame_of(frame_type::welcome, std::span(body).first(24))), w));
  EXPECT_EQ(w.host, host_2);
  EXPECT_TRUE(w.cluster.empty());
}

TEST(WireDecodeErrors, Refuse) {
  refuse r;
  EXPECT_EQ(decode_refuse(whole(frame_of(frame_type::refuse, bytes({0x01}))), r),
            decode_error::bad_handshake)
      << "no room for the code";
  EXPECT_EQ(decode_refuse(whole(frame_of(frame_type::refuse, bytes({0x00, 0x00}))), r),
            decode_error::bad_handshake)
      << "code 0";
  EXPECT_EQ(decode_refuse(whole(frame_of(frame_type::refuse, bytes({0x0b, 0x00}))), r),
            decode_error::bad_handshake)
      << "code 11";

  std::vector<std::byte> body = bytes({0x08, 0x00});
  append(body, bytes(std::string(256, 't')));
  ASSERT_FALSE(decode_refuse(whole(frame_of(frame_type::refuse, body)), r));
  EXPECT_EQ(r.code, refuse_code::wrong_role);
  EXPECT_EQ(r.text.size(), 256u);
  body.push_back(std::byte{'t'});
  EXPECT_EQ(decode_refuse(whole(frame_of(frame_type::refuse, body)), r),
            decode_error::bad_handshake)
      << "257 bytes of text";
}

TEST(WireDecodeErrors, RefuseTextIsCutOnACharacterBoundary) {
  // 255 ASCII bytes then a 2-byte character: cutting at 256 would split it.
  refuse r{refuse_code::malformed, std::string(255, 'a') + "\xc3\xa9" + "tail"};
  std::vector<std::byte> out;
  append_refuse(out, r);
  refuse decoded;
  ASSERT_FALSE(decode_refuse(whole(out), decoded));
  EXPECT_EQ(decoded.text, std::string(255, 'a'));
}

TEST(WireDecodeErrors, NodesUpCountMismatch) {
  EXPECT_EQ(nodes_up_error(with_count(golden_nodes_up, 3)), decode_error::bad_membership);
  EXPECT_EQ(nodes_up_error(with_count(golden_nodes_up, 1)), decode_error::bad_membership);
  EXPECT_EQ(nodes_up_error(with_count(golden_nodes_up, 0xffffffff)), decode_error::bad_membership);
  EXPECT_EQ(nodes_up_error(frame_of(frame_type::nodes_up, bytes({0, 0, 0}))),
            decode_error::bad_membership)
      << "no room for the count";
  EXPECT_FALSE(nodes_up_error(frame_of(frame_type::nodes_up, bytes({0, 0, 0, 0}))));
}

// Entry `i`'s slot, the last field of its 40 bytes.
std::vector<std::byte> with_slot(std::vector<std::byte> frame, std::size_t i, std::uint32_t slot) {
  base::store_le(frame.data() + header_size + 4 + i * node_entry_size + 36, slot);
  return frame;
}

TEST(WireDecodeErrors, NodesUpSlotAtOrAboveTheLimit) {
  for (std::uint32_t slot : {limits::max_workers_per_host, 0x10000u, 0xfffffffeu}) {
    EXPECT_EQ(nodes_up_error(with_slot(golden_nodes_up, 0, slot)), decode_error::bad_membership)
        << slot;
    EXPECT_EQ(nodes_up_error(with_slot(golden_nodes_up, 1, slot)), decode_error::bad_membership)
        << slot;
  }
  EXPECT_FALSE(nodes_up_error(with_slot(golden_nodes_up, 0, 0)));
  EXPECT_FALSE(nodes_up_error(with_slot(golden_nodes_up, 1, no_slot)));
  // An entry of the 36 bytes version 2 had is no longer whole.
  std::vector<std::byte> short_entry = frame_of(frame_type::nodes_up, bytes({1, 0, 0, 0}));
  append(short_entry, std::vector<std::byte>(36));
  base::store_le(short_entry.data(), static_cast<std::uint32_t>(short_entry.size() - 4));
  EXPECT_EQ(nodes_up_error(short_entry), decode_error::bad_membership);
}

TEST(WireDecodeErrors, SlotRecordOnlyInAWelcomeAndWithinTheLimit) {
  const auto u32 = [](std::uint32_t v) {
    std::string out(4, '\0');
    base::store_le(reinterpret_cast<std::byte*>(out.data()), v);
    return out;
  };
  EXPECT_EQ(hello_error(hello_with_records(concat({record(1, "prod"), record(12, u32(0))}))),
            decode_error::bad_handshake)
      << "a hello names no slot";
  const auto welcome_with = [&](const std::vector<std::byte>& records) {
    std::vector<std::byte> body = body_of(golden_welcome);
    body.resize(24);
    append(body, records);
    welcome w;
    const auto ec = decode_welcome(whole(frame_of(frame_type::welcome, body)), w);
    return std::make_pair(ec, w.slot);
  };
  EXPECT_EQ(welcome_with(record(12, u32(4095))).second, 4095u);
  EXPECT_EQ(welcome_with({}).second, std::nullopt) << "an attached node's: no slot";
  EXPECT_EQ(welcome_with(record(12, u32(limits::max_workers_per_host))).first,
            decode_error::bad_handshake);
  EXPECT_EQ(welcome_with(record(12, u32(no_slot))).first, decode_error::bad_handshake)
      << "a worker always has one";
  EXPECT_EQ(welcome_with(record(12, "abc")).first, decode_error::bad_handshake);
  EXPECT_EQ(welcome_with(concat({record(12, u32(1)), record(12, u32(2))})).first,
            decode_error::bad_handshake);
}

TEST(WireDecodeErrors, NodesDownCountMismatchAndBadReason) {
  EXPECT_EQ(nodes_down_error(with_count(golden_nodes_down, 3)), decode_error::bad_membership);
  EXPECT_EQ(nodes_down_error(with_count(golden_nodes_down, 1)), decode_error::bad_membership);
  for (std::uint8_t reason : {0, 9, 255}) {
    std::vector<std::byte> frame = golden_nodes_down;
    frame[header_size + 4 + 24 + 16] = std::byte{reason};  // the second entry's reason
    EXPECT_EQ(nodes_down_error(frame), decode_error::bad_membership) << int{reason};
  }
}

TEST(WireDecodeErrors, HostsUpCountMismatchAndOverrun) {
  EXPECT_EQ(hosts_up_error(with_count(golden_hosts_up, 3)), decode_error::bad_membership);
  EXPECT_EQ(hosts_up_error(with_count(golden_hosts_up, 1)), decode_error::bad_membership)
      << "bytes left after the last entry";
  std::vector<std::byte> frame = golden_hosts_up;
  frame[frame.size() - 10 - 2] = std::byte{11};  // the last address claims one byte too many
  EXPECT_EQ(hosts_up_error(frame), decode_error::bad_membership);
}

TEST(WireDecodeErrors, HostsDownCountMismatchAndBadReason) {
  EXPECT_EQ(hosts_down_error(with_count(golden_hosts_down, 2)), decode_error::bad_membership);
  EXPECT_EQ(hosts_down_error(with_count(golden_hosts_down, 0)), decode_error::bad_membership);
  std::vector<std::byte> frame = golden_hosts_down;
  frame[header_size + 4 + 16] = std::byte{0};
  EXPECT_EQ(hosts_down_error(frame), decode_error::bad_membership);
}

TEST(WireDecodeErrors, MembershipEntryLimit) {
  // Consistent frames of valid entries, one at the limit and one past it (needs a large maximum).
  auto hosts_down = [](std::uint32_t count) {
    std::vector<std::byte> body(4 + std::size_t{count} * host_down_entry_size);
    base::store_le(body.data(), count);
    for (std::size_t i = 0; i < count; ++i) body[4 + i * host_down_entry_size + 16] = std::byte{4};
    return frame_of(frame_type::hosts_down, body);
  };
  EXPECT_FALSE(hosts_down_error(hosts_down(limits::max_membership_entries)));
  EXPECT_EQ(hosts_down_error(hosts_down(limits::max_membership_entries + 1)),
            decode_error::bad_membership);
}

TEST(WireDecodeErrors, Goodbye) {
  leave_reason reason;
  for (std::uint8_t value : {0, 9, 200}) {
    EXPECT_EQ(decode_goodbye(whole(frame_of(frame_type::goodbye, bytes({value}))), reason),
              decode_error::bad_body)
        << int{value};
  }
}

TEST(WireDecodeErrors, DecodersRefuseAFrameOfAnotherType) {
  const frame_view heartbeat = whole(golden_heartbeat);
  hello h;
  welcome w;
  refuse r;
  leave_reason reason;
  std::vector<node_entry> nodes;
  std::vector<node_down_entry> downs;
  std::vector<host_entry> hosts;
  std::vector<host_down_entry> host_downs;
  message_view m;
  bool snapshot = false;
  EXPECT_EQ(decode_hello(whole(golden_welcome), h), decode_error::bad_handshake);
  EXPECT_EQ(decode_welcome(whole(golden_hello), w), decode_error::bad_handshake);
  EXPECT_EQ(decode_refuse(heartbeat, r), decode_error::bad_handshake);
  EXPECT_EQ(decode_goodbye(heartbeat, reason), decode_error::bad_body);
  EXPECT_EQ(decode_nodes_up(whole(golden_nodes_down), nodes, snapshot),
            decode_error::bad_membership);
  EXPECT_EQ(decode_nodes_down(heartbeat, downs), decode_error::bad_membership);
  EXPECT_EQ(decode_hosts_up(heartbeat, hosts, snapshot), decode_error::bad_membership);
  EXPECT_EQ(decode_hosts_down(heartbeat, host_downs), decode_error::bad_membership);
  EXPECT_EQ(decode_message(whole(golden_hello), m), decode_error::bad_message);
  EXPECT_EQ(check_message_frame(heartbeat), decode_error::bad_message);
  EXPECT_EQ(status_json(heartbeat), "");
}

TEST(WireDecodeErrors, MessageRequestOrReplyWithoutId) {
  for (const std::vector<std::byte>* golden : {&golden_request, &golden_reply}) {
    std::vector<std::byte> frame = *golden;
    std::fill_n(frame.begin() + 40, 8, std::byte{0});
    message_view m;
    EXPECT_FALSE(check_message_frame(whole(frame))) << "routable";
    EXPECT_EQ(decode_message(whole(frame), m), decode_error::bad_message);
  }
}

TEST(WireDecodeErrors, HandBuiltViewsTooShortForAHeaderAreRefused) {
  // A caller could build a view by hand; decoders bound reads by the bytes, not the size field.
  frame_view view;
  view.header.type = frame_type::hello;
  view.header.size = 1000;
  view.bytes = std::span(golden_hello).first(5);
  hello h;
  EXPECT_EQ(decode_hello(view, h), decode_error::bad_handshake);
  view.header.type = frame_type::send;
  view.header.aux = 4;
  message_view m;
  EXPECT_EQ(decode_message(view, m), decode_error::bad_message);
  EXPECT_TRUE(peek_src(view).is_nil());
  EXPECT_EQ(peek_request_id(view), 0u);
}

}  // namespace
}  // namespace galaxies::wire
