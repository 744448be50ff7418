// A node's sends to one node join into a send_batch while the channel has not written
// (protocol.md §4.2), and the batch never outlives what makes it valid: the receiver leaving, a
// write. On the receiving side a batch is its messages, in order, up to a handler that stops the
// node. node_core is driven here by hand: the test plays its master, frame by frame.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "node_core_harness.hpp"
#include "wire/message.hpp"
#include "wire/message_batch.hpp"

namespace galaxies::detail {
namespace {

class NodeBatch : public test::node_core_harness {
 protected:
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
