// The typed errors a node's requests and sends end with, where the node itself decides them:
// handler_failed (its handler threw or dropped the request), not_connected (no master yet, or
// not any more) and overloaded (max_pending_requests of its own requests in flight). The test
// plays the node's master, frame by frame.
#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "node_core_harness.hpp"
#include "wire/message.hpp"

namespace galaxies::detail {
namespace {

using namespace std::chrono_literals;

struct reply_seen {
  std::uint64_t request_id = 0;
  errc status = errc::ok;
  std::string payload;
};

class NodeErrors : public test::node_core_harness {
 protected:
  // A request from `from` to the node, as its master would deliver it.
  void request_from(const node_id& from, std::uint64_t id, std::string_view command,
                    std::string_view payload) {
    feed([&](auto& out) {
      wire::append_message(out, wire::frame_type::request, from, core_->id(), id, 10000, command,
                           as_bytes(payload), limits::default_max_frame_size);
    });
  }

  // The replies among the frames the node has written since the last call.
  std::vector<reply_seen> replies_written() {
    std::vector<reply_seen> out;
    for (const auto& f : written()) {
      const auto view = wire::frame_parser().parse(f).frame;
      wire::message_view m;
      if (view.header.type != wire::frame_type::reply || wire::decode_message(view, m)) continue;
      out.push_back(
          {m.request_id, static_cast<errc>(m.word),
           std::string(reinterpret_cast<const char*>(m.payload.data()), m.payload.size())});
    }
    return out;
  }

  void reply_to_node(const node_id& from, std::uint64_t id, std::string_view payload) {
    feed([&](auto& out) {
      wire::append_message(out, wire::frame_type::reply, from, core_->id(), id,
                           static_cast<std::uint32_t>(errc::ok), {}, as_bytes(payload),
                           limits::default_max_frame_size);
    });
  }

  void echo_handler() {
    core_->set_handler("echo", [](const message& m, responder r) { r.reply(m.payload); });
  }

  // The node still serves after a failed handler: `echo` answers as ever.
  void expect_still_serving(std::uint64_t id) {
    request_from(y_, id, "echo", "still here");
    const auto replies = replies_written();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0].request_id, id);
    EXPECT_EQ(replies[0].status, errc::ok);
    EXPECT_EQ(replies[0].payload, "still here");
    EXPECT_TRUE(core_->ready());
  }
};

TEST_F(NodeErrors, AHandlerThatThrowsAnswersHandlerFailedAndTheNodeServesOn) {
  echo_handler();
  core_->set_handler(
      "boom", [](const message&, responder) { throw std::runtime_error("the handler's own bug"); });
  request_from(x_, 7, "boom", "");
  const auto replies = replies_written();
  ASSERT_EQ(replies.size(), 1u) << "exactly one answer";
  EXPECT_EQ(replies[0].request_id, 7u);
  EXPECT_EQ(replies[0].status, errc::handler_failed);
  expect_still_serving(8);
}

TEST_F(NodeErrors, AHandlerThatThrowsAfterReplyingSendsOnlyItsReply) {
  core_->set_handler("half", [](const message&, responder r) {
    r.reply(as_bytes("done"));
    throw std::runtime_error("after the reply");
  });
  request_from(x_, 3, "half", "");
  const auto replies = replies_written();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].status, errc::ok);
  EXPECT_EQ(replies[0].payload, "done");
}

TEST_F(NodeErrors, AHandlerThatDropsItsResponderAnswersHandlerFailed) {
  echo_handler();
  core_->set_handler("forget", [](const message&, responder) {});
  request_from(x_, 11, "forget", "");
  const auto replies = replies_written();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].request_id, 11u);
  EXPECT_EQ(replies[0].status, errc::handler_failed);
  expect_still_serving(12);
}

TEST_F(NodeErrors, AResponderKeptAndDroppedLaterAnswersHandlerFailedThen) {
  std::optional<responder> kept;
  core_->set_handler("later", [&](const message&, responder r) { kept.emplace(std::move(r)); });
  request_from(x_, 21, "later", "");
  EXPECT_TRUE(replies_written().empty()) << "a kept responder is not an answer yet";
  kept.reset();
  const auto replies = replies_written();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].request_id, 21u);
  EXPECT_EQ(replies[0].status, errc::handler_failed);
}

TEST_F(NodeErrors, ANodeWhoseMasterWentFailsPendingAndNewTrafficWithNotConnected) {
  std::optional<std::error_code> pending, after;
  core_->start_request(x_, "ping", {}, 10s, [&](std::error_code ec, byte_view) { pending = ec; });
  ASSERT_EQ(requests_written().size(), 1u);
  ::shutdown(master_fd_, SHUT_RDWR);
  io_.run_for(50ms);
  ASSERT_FALSE(core_->ready());
  EXPECT_EQ(pending, errc::not_connected) << "a request in flight when the master went";

  core_->start_request(x_, "ping", {}, 10s, [&](std::error_code ec, byte_view) { after = ec; });
  io_.restart();  // out of work once the link was gone
  io_.run_for(20ms);
  EXPECT_EQ(after, errc::not_connected);
  EXPECT_EQ(core_->send(x_, "ping", {}), errc::not_connected);
  EXPECT_EQ(core_->broadcast("ping", {}), errc::not_connected);
  EXPECT_EQ(core_->counters().failed_requests.not_connected, 2u);
}

TEST(NodeNotYetConnected, RefusesSendsAndRequestsWithNotConnected) {
  asio::io_context io;
  node_core::settings s;
  s.role = wire::role::attached;
  s.cluster = "unit";
  auto core = std::make_shared<node_core>(io.get_executor(), s);
  std::optional<std::error_code> request, async_send;
  core->start_request(node_id::random(), "ping", {}, 1s,
                      [&](std::error_code ec, byte_view) { request = ec; });
  core->start_send(node_id::random(), "ping", {}, [&](std::error_code ec) { async_send = ec; });
  EXPECT_EQ(core->send(node_id::random(), "ping", {}), errc::not_connected);
  EXPECT_EQ(core->broadcast("ping", {}), errc::not_connected);
  io.run_for(20ms);
  EXPECT_EQ(request, errc::not_connected);
  EXPECT_EQ(async_send, errc::not_connected);
}

class NodeOverloaded : public NodeErrors {
 protected:
  static constexpr std::size_t max_pending = 3;
  void configure(node_core::settings& s) override { s.max_pending_requests = max_pending; }
};

TEST_F(NodeOverloaded, TheRequestPastMaxPendingIsRefusedAndTheOthersComplete) {
  std::vector<std::optional<std::error_code>> outcomes(max_pending + 1);
  std::vector<std::string> answers(max_pending + 1);
  for (std::size_t i = 0; i <= max_pending; ++i)
    core_->start_request(
        x_, "ping", as_bytes(std::to_string(i)), 10s, [&, i](std::error_code ec, byte_view reply) {
          outcomes[i] = ec;
          answers[i].assign(reinterpret_cast<const char*>(reply.data()), reply.size());
        });
  const auto ids = requests_written();
  ASSERT_EQ(ids.size(), max_pending) << "the refused one never goes out";
  EXPECT_EQ(outcomes[max_pending], errc::overloaded);
  for (std::size_t i = 0; i < max_pending; ++i) EXPECT_FALSE(outcomes[i]) << "still pending";

  for (std::size_t i = 0; i < max_pending; ++i)
    reply_to_node(x_, ids[i], "pong " + std::to_string(i));
  for (std::size_t i = 0; i < max_pending; ++i) {
    ASSERT_TRUE(outcomes[i]) << i;
    EXPECT_EQ(*outcomes[i], std::error_code{}) << i;
    EXPECT_EQ(answers[i], "pong " + std::to_string(i));
  }
  EXPECT_EQ(core_->counters().failed_requests.overloaded, 1u);

  // Room again: the next request goes out.
  std::optional<std::error_code> next;
  core_->start_request(x_, "ping", {}, 10s, [&](std::error_code ec, byte_view) { next = ec; });
  EXPECT_EQ(requests_written().size(), 1u);
  EXPECT_FALSE(next);
  // Ended here, while `next` lives (the fixture's stop would fail it after this body).
  core_->stop();
  EXPECT_EQ(next, errc::shutting_down);
}

}  // namespace
}  // namespace galaxies::detail
