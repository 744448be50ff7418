// A node's sends to one node join into a send_batch while the channel has not written
// (protocol.md §4.2), and the batch never outlives what makes it valid: the receiver leaving, a
// write. On the receiving side a batch is its messages, in order, up to a handler that stops the
// node. node_core is driven here by hand: the test plays its master, frame by frame.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <string>
#include <vector>

#include "wire/control.hpp"
#include "wire/message.hpp"
#include "wire/message_batch.hpp"
#include "worker/node_core.hpp"

namespace galaxies::detail {
namespace {

using namespace std::chrono_literals;

class NodeBatch : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2] = {-1, -1};
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    master_fd_ = fds[1];
    const asio::generic::stream_protocol unix_stream(AF_UNIX, SOCK_STREAM);
    node_core::settings s;
    s.role = wire::role::attached;
    s.cluster = "batch";
    core_ = std::make_shared<node_core>(io_.get_executor(), s);
    core_->connect(transport::socket(io_, unix_stream, fds[0]));

    wire::welcome w;
    w.host = host_;
    w.cluster = "batch";
    w.flow_window = limits::default_flow_window;
    w.flow_budget = 32u << 20;
    feed([&](auto& out) { wire::append_welcome(out, w); });
    const std::vector<wire::node_entry> nodes = {{x_, host_, 1}, {y_, host_, 2}};
    feed([&](auto& out) { wire::append_nodes_up(out, nodes, true); });
    ASSERT_TRUE(core_->ready());
    written();  // the hello
  }

  void TearDown() override {
    core_->stop();
    io_.run_for(20ms);
    ::close(master_fd_);
  }

  // A frame from "the master", handed to the node as its link would.
  template <class Encode>
  void feed(Encode encode) {
    std::vector<std::byte> bytes;
    encode(bytes);
    const auto r = wire::frame_parser().parse(bytes);
    ASSERT_EQ(r.state, wire::parse_result::status::frame);
    core_->on_frame(r.frame);
  }

  // Every frame the node has written to its master since the last call.
  std::vector<std::vector<std::byte>> written() {
    io_.run_for(20ms);
    std::vector<std::byte> in(1 << 20);
    const ssize_t n = ::recv(master_fd_, in.data(), in.size(), MSG_DONTWAIT);
    in.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    std::vector<std::vector<std::byte>> frames;
    std::span<const std::byte> rest(in);
    for (wire::parse_result r;
         (r = wire::frame_parser().parse(rest)).state == wire::parse_result::status::frame;) {
      frames.emplace_back(r.frame.bytes.begin(), r.frame.bytes.end());
      rest = rest.subspan(r.frame.bytes.size());
    }
    return frames;
  }

  static std::vector<std::string> commands_of(const std::vector<std::byte>& frame) {
    const auto view = wire::frame_parser().parse(frame).frame;
    std::vector<std::string> out;
    if (view.header.type == wire::frame_type::send) {
      wire::message_view m;
      if (!wire::decode_message(view, m)) out.emplace_back(m.command);
      return out;
    }
    if (wire::check_batch(view)) return out;
    wire::batch_reader reader(view);
    std::string_view command;
    std::span<const std::byte> payload;
    while (reader.next(command, payload)) out.emplace_back(command);
    return out;
  }

  asio::io_context io_;
  int master_fd_ = -1;
  std::shared_ptr<node_core> core_;
  const host_id host_ = host_id::random();
  const node_id x_ = node_id::random();
  const node_id y_ = node_id::random();
};

TEST_F(NodeBatch, SendsToOneNodeBeforeAWriteGoAsOneBatchInOrder) {
  for (const char* c : {"a", "b", "c"}) EXPECT_FALSE(core_->send(x_, c, {}));
  EXPECT_FALSE(core_->send(y_, "to-y", {}));  // another node: a frame of its own
  EXPECT_FALSE(core_->send(x_, "d", {}));     // not the last frame any more: a new one
  const auto frames = written();
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(commands_of(frames[0]), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(commands_of(frames[1]), std::vector<std::string>{"to-y"});
  EXPECT_EQ(commands_of(frames[2]), std::vector<std::string>{"d"});
  EXPECT_EQ(core_->counters().sent, 5u);

  // Once written, a batch is closed: the next send starts a frame.
  EXPECT_FALSE(core_->send(x_, "e", {}));
  EXPECT_FALSE(core_->send(x_, "f", {}));
  const auto later = written();
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(commands_of(later[0]), (std::vector<std::string>{"e", "f"}));
}

TEST_F(NodeBatch, ABatchStopsGrowingAtItsBound) {
  const std::string payload(1000, 'p');
  for (int i = 0; i < 40; ++i) ASSERT_FALSE(core_->send(x_, "m", as_bytes(payload)));
  const auto frames = written();
  ASSERT_GT(frames.size(), 1u);
  std::size_t messages = 0;
  for (const auto& f : frames) {
    EXPECT_LE(f.size(), limits::max_batch_bytes);
    messages += commands_of(f).size();
  }
  EXPECT_EQ(messages, 40u);
}

TEST_F(NodeBatch, ANodeThatLeftIsNoLongerSentToThroughItsOpenBatch) {
  ASSERT_FALSE(core_->send(x_, "a", {}));
  ASSERT_FALSE(core_->send(x_, "b", {}));
  const std::vector<wire::node_down_entry> gone = {{x_, leave_reason::graceful, 0}};
  feed([&](auto& out) { wire::append_nodes_down(out, gone); });
  EXPECT_EQ(core_->send(x_, "after", {}), errc::no_such_node);
  const auto frames = written();
  ASSERT_EQ(frames.size(), 1u) << "what was accepted before it left still goes";
  EXPECT_EQ(commands_of(frames[0]), (std::vector<std::string>{"a", "b"}));
}

TEST_F(NodeBatch, AReceivedBatchIsItsMessagesInOrderUpToAHandlerThatStops) {
  std::vector<std::string> handled;
  for (const char* c : {"one", "two", "three"})
    core_->set_handler(c, [&, c](const message& m, responder) {
      EXPECT_EQ(m.from, x_);
      handled.emplace_back(c);
      if (handled.size() == 2 && std::string(c) == "two" && m.payload.size() == 1) core_->stop();
    });
  const auto batch = [&](std::string_view second_payload) {
    return [=, this](std::vector<std::byte>& out) {
      wire::append_message(out, wire::frame_type::send, x_, core_->id(), 0, 0, "one", {},
                           limits::default_max_frame_size);
      wire::append_to_batch(out, 0, "two", as_bytes(second_payload), 0);
      wire::append_to_batch(out, 0, "three", {}, 0);
    };
  };
  feed(batch(""));
  EXPECT_EQ(handled, (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(core_->counters().received, 3u);

  handled.clear();
  feed(batch("!"));  // its second handler stops the node
  EXPECT_EQ(handled, (std::vector<std::string>{"one", "two"}));
  EXPECT_FALSE(core_->ready());
}

}  // namespace
}  // namespace galaxies::detail
