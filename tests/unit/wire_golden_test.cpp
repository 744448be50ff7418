// Every frame type against bytes written by hand from docs/protocol.md: the encoder must produce
// exactly them and the decoder must give the fields back. These pin the wire format; a failure here
// means peers of different builds would no longer understand each other.
#include <gtest/gtest.h>

#include "unit/wire_test_frames.hpp"
#include "wire/control.hpp"
#include "wire/message.hpp"

namespace galaxies::wire {
namespace {

using namespace galaxies::wire::test;

std::string encoded_hex(void (*encode)(std::vector<std::byte>&)) {
  std::vector<std::byte> out;
  encode(out);
  return hex(out);
}

frame_view parse_whole(const std::vector<std::byte>& golden) {
  const parse_result result = frame_parser().parse(golden);
  EXPECT_EQ(result.state, parse_result::status::frame) << result.error.message();
  EXPECT_EQ(result.frame.bytes.size(), golden.size());
  return result.frame;
}

hello golden_hello_fields() {
  hello h;
  h.version = 1;
  h.role = role::host;
  h.sender = host_1.value();
  h.target = host_2.value();
  h.pid = 0x1234;
  h.cluster = "prod";
  h.listen = "10.0.0.1:7000";
  h.max_frame = 1u << 20;
  h.heartbeat_ms = 500;
  h.hostname = "h1";
  return h;
}

welcome golden_welcome_fields() {
  welcome w;
  w.version = 1;
  w.host = host_2;
  w.pid = 0x5678;
  w.cluster = "prod";
  w.listen = "10.0.0.2:7000";
  w.slot = 3;
  return w;
}

const std::vector<node_entry> golden_nodes = {{node_a, host_1, 100, 4095},
                                              {node_b, host_1, 0x01020304, no_slot}};
const std::vector<node_down_entry> golden_downs = {{node_a, leave_reason::exited, 256},
                                                   {node_b, leave_reason::protocol_error, -1}};
const std::vector<host_entry> golden_hosts = {{host_1, "10.0.0.1:7000"}, {host_2, "[::1]:7001"}};
const std::vector<host_down_entry> golden_host_downs = {{host_2, leave_reason::link_lost}};

struct message_case {
  const char* name;
  const std::vector<std::byte>* golden;
  frame_type type;
  node_id src;
  node_id dst;
  std::uint64_t request_id;
  std::uint32_t word;
  std::string_view command;
  std::vector<std::byte> payload;
};

std::vector<message_case> message_cases() {
  return {
      {"send", &golden_send, frame_type::send, node_a, node_b, 0, 0, "ping",
       bytes({0xde, 0xad, 0xbe, 0xef})},
      {"request", &golden_request, frame_type::request, node_a, node_b, golden_request_id, 1500,
       "get", bytes("k1")},
      {"reply", &golden_reply, frame_type::reply, node_b, node_a, golden_request_id,
       static_cast<std::uint32_t>(errc::no_handler), "", bytes("no")},
      {"broadcast", &golden_broadcast, frame_type::broadcast, node_a, node_id{}, 0, 0, "tick", {}},
  };
}

TEST(WireGolden, MessageFramesEncodeExactly) {
  for (const message_case& c : message_cases()) {
    SCOPED_TRACE(c.name);
    std::vector<std::byte> out;
    ASSERT_FALSE(append_message(out, c.type, c.src, c.dst, c.request_id, c.word, c.command,
                                c.payload, limits::default_max_frame_size));
    EXPECT_EQ(hex(out), hex(*c.golden));
    EXPECT_EQ(out.size(), message_frame_size(c.command.size(), c.payload.size()));
  }
}

TEST(WireGolden, MessageFramesDecodeToTheirFields) {
  for (const message_case& c : message_cases()) {
    SCOPED_TRACE(c.name);
    const frame_view frame = parse_whole(*c.golden);
    message_view m;
    ASSERT_FALSE(decode_message(frame, m));
    EXPECT_EQ(m.type, c.type);
    EXPECT_EQ(m.src, c.src);
    EXPECT_EQ(m.dst, c.dst);
    EXPECT_EQ(m.request_id, c.request_id);
    EXPECT_EQ(m.word, c.word);
    EXPECT_EQ(m.command, c.command);
    EXPECT_EQ(hex(m.payload), hex(c.payload));
    // What a router reads without decoding must agree with the full decode.
    EXPECT_FALSE(check_message_frame(frame));
    EXPECT_EQ(peek_src(frame), c.src);
    EXPECT_EQ(peek_dst(frame), c.dst);
    EXPECT_EQ(peek_request_id(frame), c.request_id);
  }
}

TEST(WireGolden, Hello) {
  std::vector<std::byte> out;
  append_hello(out, golden_hello_fields());
  EXPECT_EQ(hex(out), hex(golden_hello));

  hello decoded;
  ASSERT_FALSE(decode_hello(parse_whole(golden_hello), decoded));
  EXPECT_EQ(decoded, golden_hello_fields());
}

TEST(WireGolden, Welcome) {
  std::vector<std::byte> out;
  append_welcome(out, golden_welcome_fields());
  EXPECT_EQ(hex(out), hex(golden_welcome));

  welcome decoded;
  ASSERT_FALSE(decode_welcome(parse_whole(golden_welcome), decoded));
  EXPECT_EQ(decoded, golden_welcome_fields());
}

TEST(WireGolden, Refuse) {
  const refuse fields{refuse_code::wrong_target, "stale"};
  std::vector<std::byte> out;
  append_refuse(out, fields);
  EXPECT_EQ(hex(out), hex(golden_refuse));

  refuse decoded;
  ASSERT_FALSE(decode_refuse(parse_whole(golden_refuse), decoded));
  EXPECT_EQ(decoded, fields);
}

TEST(WireGolden, NodesUp) {
  std::vector<std::byte> out;
  append_nodes_up(out, golden_nodes, true);
  EXPECT_EQ(hex(out), hex(golden_nodes_up));

  std::vector<node_entry> decoded;
  bool snapshot = false;
  ASSERT_FALSE(decode_nodes_up(parse_whole(golden_nodes_up), decoded, snapshot));
  EXPECT_EQ(decoded, golden_nodes);
  EXPECT_TRUE(snapshot);
}

TEST(WireGolden, NodesDown) {
  std::vector<std::byte> out;
  append_nodes_down(out, golden_downs);
  EXPECT_EQ(hex(out), hex(golden_nodes_down));

  std::vector<node_down_entry> decoded;
  ASSERT_FALSE(decode_nodes_down(parse_whole(golden_nodes_down), decoded));
  EXPECT_EQ(decoded, golden_downs);
}

TEST(WireGolden, HostsUp) {
  std::vector<std::byte> out;
  append_hosts_up(out, golden_hosts, true);
  EXPECT_EQ(hex(out), hex(golden_hosts_up));

  std::vector<host_entry> decoded;
  bool snapshot = false;
  ASSERT_FALSE(decode_hosts_up(parse_whole(golden_hosts_up), decoded, snapshot));
  EXPECT_EQ(decoded, golden_hosts);
  EXPECT_TRUE(snapshot);
}

TEST(WireGolden, HostsDown) {
  std::vector<std::byte> out;
  append_hosts_down(out, golden_host_downs);
  EXPECT_EQ(hex(out), hex(golden_hosts_down));

  std::vector<host_down_entry> decoded;
  ASSERT_FALSE(decode_hosts_down(parse_whole(golden_hosts_down), decoded));
  EXPECT_EQ(decoded, golden_host_downs);
}

TEST(WireGolden, Heartbeat) {
  EXPECT_EQ(encoded_hex(append_heartbeat), hex(golden_heartbeat));
  EXPECT_EQ(parse_whole(golden_heartbeat).header.type, frame_type::heartbeat);
}

TEST(WireGolden, HeartbeatWithLateness) {
  const auto golden = bytes({
      0x08, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,  // size 8, heartbeat
      0xe8, 0x03, 0x00, 0x00,                          // 1000 ms late
  });
  std::vector<std::byte> out;
  append_heartbeat(out, 1000);
  EXPECT_EQ(hex(out), hex(golden));
  EXPECT_EQ(decode_heartbeat(parse_whole(golden)), 1000u);
  EXPECT_EQ(decode_heartbeat(parse_whole(golden_heartbeat)), 0u) << "bodiless: punctual";
}

TEST(WireGolden, Probe) {
  const auto probe = bytes({
      0x0c, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,  // size 12, probe
      0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // token
  });
  const auto reply = bytes({
      0x0c, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,  // size 12, probe_reply
      0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // the same token
  });
  std::vector<std::byte> out;
  append_probe(out, 0x0102030405060708);
  EXPECT_EQ(hex(out), hex(probe));
  out.clear();
  append_probe_reply(out, 0x0102030405060708);
  EXPECT_EQ(hex(out), hex(reply));
  EXPECT_EQ(decode_probe_token(parse_whole(probe)), 0x0102030405060708u);
  EXPECT_EQ(decode_probe_token(parse_whole(reply)), 0x0102030405060708u);
}

TEST(WireGolden, Stopping) {
  std::vector<std::byte> out;
  append_stopping(out, 3000);
  EXPECT_EQ(hex(out), hex(golden_stopping));
  EXPECT_EQ(decode_stopping(parse_whole(golden_stopping)), 3000u);
}

TEST(WireGolden, Goodbye) {
  std::vector<std::byte> out;
  append_goodbye(out, leave_reason::graceful);
  EXPECT_EQ(hex(out), hex(golden_goodbye));

  leave_reason reason = leave_reason::exited;
  ASSERT_FALSE(decode_goodbye(parse_whole(golden_goodbye), reason));
  EXPECT_EQ(reason, leave_reason::graceful);
}

TEST(WireGolden, Status) {
  EXPECT_EQ(encoded_hex(append_status_request), hex(golden_status_request));
  EXPECT_EQ(parse_whole(golden_status_request).header.type, frame_type::status_request);

  std::vector<std::byte> out;
  append_status_reply(out, "{}");
  EXPECT_EQ(hex(out), hex(golden_status_reply));
  EXPECT_EQ(status_json(parse_whole(golden_status_reply)), "{}");
}

TEST(WireGolden, Watch) {
  EXPECT_EQ(encoded_hex(append_watch_request), hex(golden_watch_request));
  EXPECT_EQ(parse_whole(golden_watch_request).header.type, frame_type::watch_request);

  std::vector<std::byte> out;
  append_watch_event(out, "{}");
  EXPECT_EQ(hex(out), hex(golden_watch_event));
  EXPECT_EQ(status_json(parse_whole(golden_watch_event)), "{}");
}

TEST(WireGolden, SnapshotFlagFollowsTheArgument) {
  std::vector<std::byte> out;
  append_nodes_up(out, golden_nodes, false);
  append_hosts_up(out, golden_hosts, false);

  bool snapshot = true;
  std::vector<node_entry> nodes;
  const frame_view first = parse_one(out);
  ASSERT_FALSE(decode_nodes_up(first, nodes, snapshot));
  EXPECT_FALSE(snapshot);

  snapshot = true;
  std::vector<host_entry> hosts;
  ASSERT_FALSE(
      decode_hosts_up(parse_one(std::span(out).subspan(first.bytes.size())), hosts, snapshot));
  EXPECT_FALSE(snapshot);
}

TEST(WireGolden, EncodersAppendWithoutTouchingWhatIsThere) {
  std::vector<std::byte> out = bytes({0xaa, 0xbb});
  append_heartbeat(out);
  append_goodbye(out, leave_reason::graceful);
  std::vector<std::byte> expected = bytes({0xaa, 0xbb});
  append(expected, golden_heartbeat);
  append(expected, golden_goodbye);
  EXPECT_EQ(hex(out), hex(expected));
}

TEST(WireGolden, EveryTypeHasAName) {
  for (const golden_frame& g : golden_frames()) EXPECT_STREQ(to_string(g.type), g.name);
  EXPECT_STREQ(to_string(role::observer), "observer");
  EXPECT_STREQ(to_string(refuse_code::duplicate_link), "duplicate_link");
  EXPECT_STREQ(to_string(static_cast<frame_type>(0x7f)), "unknown");
}

}  // namespace
}  // namespace galaxies::wire
