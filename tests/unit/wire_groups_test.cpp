// Groups on the wire (docs/protocol.md §4.3, §5.1, §3 record 13): the frames against bytes written
// from the spec, and every rule their decoders enforce.
#include <gtest/gtest.h>

#include "base/endian.hpp"
#include "galaxies/error.hpp"
#include "galaxies/node.hpp"
#include "unit/wire_test_frames.hpp"
#include "wire/control.hpp"
#include "wire/groups.hpp"
#include "wire/message.hpp"

namespace galaxies::wire {
namespace {

using namespace galaxies::wire::test;

const std::vector<group_entry> golden_joins = {{node_a, "room-1"}, {node_b, "lobby"}};
const std::vector<node_id> golden_members = {node_b, node_c};

frame_view parse_whole(const std::vector<std::byte>& frame) {
  const parse_result r = frame_parser().parse(frame);
  EXPECT_EQ(r.state, parse_result::status::frame) << r.error.message();
  return r.frame;
}

std::vector<std::byte> publish_frame(std::string_view command, std::string_view group,
                                     const std::vector<node_id>& members,
                                     std::string_view payload = "hi") {
  std::vector<std::byte> out;
  EXPECT_FALSE(append_publish(out, node_a, host_1, command, group, members, bytes(payload),
                              limits::default_max_frame_size));
  return out;
}

std::error_code decode_groups_bytes(const std::vector<std::byte>& frame) {
  std::vector<group_entry> entries;
  bool snapshot = false;
  return decode_groups_up(frame_view{frame_header{0, frame_type::groups_up, 0, 0}, frame}, entries,
                          snapshot);
}

std::error_code decode_publish_bytes(const std::vector<std::byte>& frame,
                                     std::size_t max_members = 4096) {
  publish_view p;
  const parse_result r = frame_parser().parse(frame);
  if (r.state == parse_result::status::error) return r.error;
  if (r.state != parse_result::status::frame) return decode_error::bad_body;
  return decode_publish(r.frame, p, max_members);
}

// Rewrites the size field after a test changed a frame's length.
void resize_frame(std::vector<std::byte>& frame) {
  base::store_le(frame.data(), static_cast<std::uint32_t>(frame.size() - 4));
}

TEST(WireGroups, GroupsUpEncodesAndDecodesExactly) {
  std::vector<std::byte> out;
  append_groups_up(out, golden_joins, true);
  EXPECT_EQ(hex(out), hex(golden_groups_up));
  std::vector<group_entry> entries;
  bool snapshot = false;
  ASSERT_FALSE(decode_groups_up(parse_whole(golden_groups_up), entries, snapshot));
  EXPECT_EQ(entries, golden_joins);
  EXPECT_TRUE(snapshot);
}

TEST(WireGroups, GroupsDownEncodesAndDecodesExactly) {
  const std::vector<group_entry> leaves = {{node_a, "room-1"}};
  std::vector<std::byte> out;
  append_groups_down(out, leaves);
  EXPECT_EQ(hex(out), hex(golden_groups_down));
  std::vector<group_entry> entries;
  ASSERT_FALSE(decode_groups_down(parse_whole(golden_groups_down), entries));
  EXPECT_EQ(entries, leaves);
}

TEST(WireGroups, AnEmptySnapshotIsACountOfZero) {
  std::vector<std::byte> out;
  append_groups_up(out, {}, true);
  EXPECT_EQ(hex(out), hex(bytes({0x08, 0, 0, 0, 0x14, 0x01, 0, 0, 0, 0, 0, 0})));
  std::vector<group_entry> entries = golden_joins;
  bool snapshot = false;
  ASSERT_FALSE(decode_groups_up(parse_whole(out), entries, snapshot));
  EXPECT_TRUE(entries.empty());
  EXPECT_TRUE(snapshot);
}

TEST(WireGroups, GroupsFramesCheckCountAgainstTheBody) {
  const std::error_code bad = decode_error::bad_membership;
  auto frame = golden_groups_up;
  frame[8] = std::byte{3};  // three entries announced, two present
  EXPECT_EQ(decode_groups_bytes(frame), bad);
  frame = golden_groups_up;
  frame[8] = std::byte{1};  // one announced: the second is trailing bytes
  EXPECT_EQ(decode_groups_bytes(frame), bad);
  frame = golden_groups_up;
  frame.pop_back();  // the last name cut short
  resize_frame(frame);
  EXPECT_EQ(decode_groups_bytes(frame), bad);
  frame = golden_groups_up;
  base::store_le(frame.data() + 8, static_cast<std::uint32_t>(limits::max_membership_entries + 1));
  EXPECT_EQ(decode_groups_bytes(frame), bad);
  frame = golden_groups_up;
  base::store_le(frame.data() + 8, std::uint32_t{0xffffffff});  // judged before any allocation
  EXPECT_EQ(decode_groups_bytes(frame), bad);
}

TEST(WireGroups, GroupNamesMustBeCleanAndShort) {
  const std::error_code bad = decode_error::bad_membership;
  auto with_name = [](std::string_view name) {
    std::vector<std::byte> out;
    const std::vector<group_entry> entries = {{node_a, std::string(name)}};
    append_groups_up(out, entries, false);
    return out;
  };
  EXPECT_FALSE(decode_groups_bytes(with_name(std::string(limits::max_group_name, 'g'))));
  EXPECT_FALSE(decode_groups_bytes(with_name("caf\xc3\xa9")));
  EXPECT_EQ(decode_groups_bytes(with_name(std::string(limits::max_group_name + 1, 'g'))), bad);
  EXPECT_EQ(decode_groups_bytes(with_name("")), bad);
  EXPECT_EQ(decode_groups_bytes(with_name("tab\there")), bad);
  EXPECT_EQ(decode_groups_bytes(with_name("bad\xff")), bad);
  EXPECT_EQ(decode_groups_bytes(with_name("\xc0\xaf")), bad);  // overlong
  EXPECT_TRUE(is_group_name("room-1"));
  EXPECT_FALSE(is_group_name("\x7f"));
}

TEST(WireGroups, DecodersRefuseAFrameOfAnotherType) {
  std::vector<group_entry> entries;
  bool snapshot = false;
  EXPECT_EQ(decode_groups_up(parse_whole(golden_groups_down), entries, snapshot),
            decode_error::bad_membership);
  EXPECT_EQ(decode_groups_down(parse_whole(golden_groups_up), entries),
            decode_error::bad_membership);
  publish_view p;
  EXPECT_EQ(decode_publish(parse_whole(golden_send), p, 16), decode_error::bad_message);
  message_view m;
  EXPECT_EQ(decode_message(parse_whole(golden_publish), m), decode_error::bad_message);
}

TEST(WireGroups, PublishEncodesExactly) {
  EXPECT_EQ(hex(publish_frame("chat", "room-1", golden_members)), hex(golden_publish));
  EXPECT_EQ(golden_publish.size(), publish_frame_size(4, 6, 2, 2));
}

TEST(WireGroups, PublishDecodesToItsFields) {
  const frame_view frame = parse_whole(golden_publish);
  publish_view p;
  ASSERT_FALSE(decode_publish(frame, p, 2));
  EXPECT_EQ(p.src, node_a);
  EXPECT_EQ(p.dst, host_1);
  EXPECT_EQ(p.command, "chat");
  EXPECT_EQ(p.group, "room-1");
  ASSERT_EQ(p.count(), 2u);
  EXPECT_EQ(p.member(0), node_b);
  EXPECT_EQ(p.member(1), node_c);
  EXPECT_TRUE(p.lists(node_c));
  EXPECT_FALSE(p.lists(node_a));
  EXPECT_EQ(galaxies::as_text(p.payload), "hi");
  // What a router reads without decoding agrees.
  EXPECT_EQ(peek_src(frame), node_a);
  EXPECT_EQ(peek_publish_host(frame), host_1);
  EXPECT_FALSE(check_message_body(frame));
  EXPECT_TRUE(is_message(frame.header.type));
}

TEST(WireGroups, PublishWithoutPayloadOrWithAMaximalName) {
  const std::string name(limits::max_group_name, 'n');
  auto frame = publish_frame("c", name, {node_b}, "");
  publish_view p;
  ASSERT_FALSE(decode_publish(parse_whole(frame), p, 1));
  EXPECT_EQ(p.group, name);
  EXPECT_TRUE(p.payload.empty());
}

TEST(WireGroups, AppendPublishRefusesWhatNoMasterWouldAccept) {
  std::vector<std::byte> out;
  const auto invalid = std::make_error_code(std::errc::invalid_argument);
  const auto payload = bytes("p");
  EXPECT_EQ(append_publish(out, node_a, host_1, "", "g", golden_members, payload, 1 << 20),
            invalid);
  EXPECT_EQ(append_publish(out, node_a, host_1, "c", "", golden_members, payload, 1 << 20),
            invalid);
  EXPECT_EQ(append_publish(out, node_a, host_1, "c", std::string(65, 'g'), golden_members, payload,
                           1 << 20),
            invalid);
  EXPECT_EQ(append_publish(out, node_a, host_1, "c", "g", {}, payload, 1 << 20), invalid);
  EXPECT_EQ(append_publish(out, node_a, host_1, std::string(256, 'c'), "g", golden_members, payload,
                           1 << 20),
            make_error_code(errc::too_large));
  const std::vector<std::byte> big(5000);
  EXPECT_EQ(append_publish(out, node_a, host_1, "c", "g", golden_members, big, 4096),
            make_error_code(errc::too_large));
  EXPECT_TRUE(out.empty()) << "a refused frame left bytes behind";
}

TEST(WireGroups, PublishCountMustFitTheBodyAndTheBound) {
  const std::error_code bad = decode_error::bad_message;
  auto frame = golden_publish;
  base::store_le(frame.data() + 48, std::uint32_t{0});
  EXPECT_EQ(decode_publish_bytes(frame), bad);
  EXPECT_EQ(decode_publish_bytes(golden_publish, 1), bad) << "over max_members";
  frame = publish_frame("chat", "room-1", golden_members, "");
  base::store_le(frame.data() + 48, std::uint32_t{3});  // a member more than the body holds
  EXPECT_EQ(decode_publish_bytes(frame), bad);
  base::store_le(frame.data() + 48, std::uint32_t{0xffffffff});
  EXPECT_EQ(decode_publish_bytes(frame, 0xffffffff), bad);
}

TEST(WireGroups, PublishNameAndCommandAreChecked) {
  const std::error_code bad = decode_error::bad_message;
  auto frame = golden_publish;
  frame[52] = std::byte{0};  // no name
  EXPECT_EQ(decode_publish_bytes(frame), bad);
  frame = golden_publish;
  frame[52] = std::byte{200};  // longer than the frame
  EXPECT_EQ(decode_publish_bytes(frame), bad);
  frame = publish_frame("chat", std::string(64, 'g'), golden_members);
  frame[52] = std::byte{65};  // 65 bytes: the name swallows a member's first byte
  EXPECT_EQ(decode_publish_bytes(frame), bad);
  frame = golden_publish;
  frame[56 + 4] = std::byte{0x01};  // a control character in the name
  EXPECT_EQ(decode_publish_bytes(frame), bad);
  frame = golden_publish;
  frame[56] = std::byte{0xff};  // the command is not UTF-8
  EXPECT_EQ(decode_publish_bytes(frame), bad);
  frame = golden_publish;
  frame[6] = std::byte{0};  // no command: the parser refuses it already
  EXPECT_EQ(decode_publish_bytes(frame), bad);
  // Reserved bytes are ignored.
  frame = golden_publish;
  frame[53] = std::byte{0x55};
  EXPECT_FALSE(decode_publish_bytes(frame));
}

TEST(WireGroups, PublishMembersAreDistinctNeitherNilNorThePublisher) {
  const std::error_code bad = decode_error::bad_message;
  EXPECT_EQ(decode_publish_bytes(publish_frame("c", "g", {node_b, node_a})), bad);
  EXPECT_EQ(decode_publish_bytes(publish_frame("c", "g", {node_id{}})), bad);
  EXPECT_EQ(decode_publish_bytes(publish_frame("c", "g", {node_b, node_c, node_b})), bad);
  // Past the pairwise check's reach: the sorted one finds the repeat too.
  std::vector<node_id> many;
  for (int i = 0; i < 100; ++i) many.push_back(node_id::random());
  EXPECT_FALSE(decode_publish_bytes(publish_frame("c", "g", many)));
  many.push_back(many[37]);
  EXPECT_EQ(decode_publish_bytes(publish_frame("c", "g", many)), bad);
}

TEST(WireGroups, WelcomeCarriesTheGroupLimits) {
  welcome w;
  w.host = host_1;
  w.cluster = "c";
  w.group_limits = group_limits{256, 4096};
  std::vector<std::byte> out;
  append_welcome(out, w);
  // The record: tag 13, length 8, u32 256, u32 4096 (protocol.md §3).
  const auto record =
      bytes({0x0d, 0x00, 0x08, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00});
  ASSERT_GE(out.size(), record.size());
  EXPECT_EQ(hex(std::span(out).last(record.size())), hex(record));
  welcome decoded;
  ASSERT_FALSE(decode_welcome(parse_whole(out), decoded));
  EXPECT_EQ(decoded, w);

  auto zero = out;
  base::store_le(zero.data() + zero.size() - 4, std::uint32_t{0});
  EXPECT_EQ(decode_welcome(parse_whole(zero), decoded), decode_error::bad_handshake);
  auto short_record = out;
  short_record.pop_back();
  short_record[short_record.size() - 9] = std::byte{7};  // length 7
  resize_frame(short_record);
  EXPECT_EQ(decode_welcome(parse_whole(short_record), decoded), decode_error::bad_handshake);
}

}  // namespace
}  // namespace galaxies::wire
