// transport::link over real sockets (a Unix socketpair, and TCP on loopback), played against by a
// raw peer: the end of the stream is seen, with its true reason, however it arrives. With
// heartbeats the link's reads drain (stream::drain_reads), and an end that came in one edge with
// the last frame shows at the link's next write (draining_buffer.hpp); without, reads are Asio's
// own and see it at once, as a stranger's truncated header and close must be (bad_input).
#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "support/eventually.hpp"
#include "support/socket_pair.hpp"
#include "transport/link.hpp"
#include "wire/message.hpp"

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;
using test::socket_kind;
using clock = std::chrono::steady_clock;
using frame_bytes = std::vector<std::byte>;

frame_bytes message_frame(std::uint32_t seq) {
  const node_id from(uuid({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}));
  const node_id to(uuid({17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}));
  const frame_bytes payload(20, std::byte{9});
  frame_bytes out;
  const auto ec = wire::append_message(out, wire::frame_type::send, from, to, 0, seq, "seq",
                                       payload, limits::default_max_frame_size);
  EXPECT_FALSE(ec) << ec.message();
  return out;
}

struct close_sink final : frame_sink {
  std::size_t frames = 0;
  std::optional<std::pair<close_reason, std::error_code>> closed;
  int closes = 0;
  clock::time_point closed_at;

  void on_frame(const wire::frame_view&) override {
    EXPECT_FALSE(closed) << "a frame after on_closed";
    ++frames;
  }
  void on_closed(close_reason reason, std::error_code error) override {
    ++closes;
    closed.emplace(reason, error);
    closed_at = clock::now();
  }
  void on_drained() override {}
};

class link_socket_test : public ::testing::TestWithParam<socket_kind> {
 protected:
  link_socket_test() {
    auto [first, second] = test::connected_pair(io_, GetParam());
    link_ = std::make_shared<link>(stream(std::move(first)), link_settings{.name = "ours"});
    peer_.emplace(std::move(second));
    link_->start(&sink_);
  }
  ~link_socket_test() override {
    link_->detach();
    link_->close(close_reason::local);
  }

  // Runs every handler that is ready now: the link's reader then waits for the peer's bytes.
  void settle() {
    if (io_.stopped()) io_.restart();
    while (io_.poll() > 0) {
    }
  }

  void peer_writes(const frame_bytes& bytes) {
    EXPECT_EQ(asio::write(*peer_, asio::buffer(bytes)), bytes.size());
  }

  // The peer sends `last` and closes while the link's loop does not run, so that its bytes and its
  // end reach our socket in one edge. It first reads what the link sent it (heartbeats): a socket
  // closed with bytes unread ends in a reset, which would show at once.
  void peer_sends_and_closes(const frame_bytes& last) {
    std::error_code ec;
    for (std::size_t n = peer_->available(ec); n > 0 && !ec; n = peer_->available(ec)) {
      frame_bytes sink(n);
      asio::read(*peer_, asio::buffer(sink), ec);
    }
    peer_writes(last);
    peer_->close();
    ASSERT_TRUE(test::wait_for_peer_end(link_->stream().lowest_layer(), 2000ms));
  }

  // The link gets heartbeats (as after a handshake), and its reads drain from the first frame on.
  void established(std::chrono::milliseconds interval, std::chrono::milliseconds silence_limit) {
    link_->enable_heartbeats(interval, silence_limit);
    peer_writes(message_frame(1));
    ASSERT_TRUE(test::run_until(
        io_, [&] { return sink_.frames == 1; }, 2s));
    settle();
  }

  bool run_until_closed(std::chrono::milliseconds limit) {
    return test::run_until(
        io_, [&] { return sink_.closed.has_value(); }, limit);
  }

  asio::io_context io_;
  close_sink sink_;
  std::shared_ptr<link> link_;
  std::optional<socket> peer_;
};

// A peer that exits right after its last frame, on an idle link: the end shows at the link's next
// heartbeat, long before any silence limit, and is the peer's close, not an i/o error.
TEST_P(link_socket_test, WithHeartbeatsAnEndThatCameWithTheLastFrameIsSeenWithinAnInterval) {
  constexpr auto interval = 50ms;
  ASSERT_NO_FATAL_FAILURE(established(interval, 60s));
  EXPECT_EQ(link_->stream().drains_reads(), reads_can_drain) << "a link with heartbeats drains";
  peer_sends_and_closes(message_frame(2));
  const auto sent_at = clock::now();
  ASSERT_TRUE(run_until_closed(interval + 2s)) << "the end was never seen";
  settle();
  EXPECT_EQ(sink_.frames, 2u);
  EXPECT_EQ(sink_.closes, 1);
  EXPECT_EQ(sink_.closed->first, close_reason::eof);
  EXPECT_FALSE(sink_.closed->second) << sink_.closed->second.message();
  EXPECT_LE(sink_.closed_at - sent_at, interval + 1s) << "later than the next heartbeat";
}

TEST_P(link_socket_test, WithHeartbeatsAnEndInsideAFrameIsStillATruncatedFrame) {
  ASSERT_NO_FATAL_FAILURE(established(50ms, 60s));
  const frame_bytes whole = message_frame(2);
  peer_sends_and_closes(frame_bytes(whole.begin(), whole.begin() + 10));
  ASSERT_TRUE(run_until_closed(2s)) << "the end was never seen";
  EXPECT_EQ(sink_.frames, 1u);
  EXPECT_EQ(sink_.closed->first, close_reason::protocol_error);
  EXPECT_EQ(sink_.closed->second, asio::error::eof);
}

// When the silence limit comes before the next heartbeat (here an hour away), the end is still
// the reason, not the silence.
TEST_P(link_socket_test, AnEndUnseenUntilTheSilenceLimitIsStillTheEnd) {
  ASSERT_NO_FATAL_FAILURE(established(1h, 150ms));
  peer_sends_and_closes(message_frame(2));
  ASSERT_TRUE(run_until_closed(3s)) << "the end was never seen";
  EXPECT_EQ(sink_.frames, 2u);
  EXPECT_EQ(sink_.closed->first, close_reason::eof);
}

// A stranger (no handshake, so no heartbeats) that sends a truncated header and closes: the reads
// are Asio's own, and the end is seen at once, though the link never writes.
TEST_P(link_socket_test, WithoutHeartbeatsAnEndThatCameWithTheBytesIsSeenAtOnce) {
  settle();
  EXPECT_FALSE(link_->stream().drains_reads());
  peer_sends_and_closes(frame_bytes(5, std::byte{1}));
  ASSERT_TRUE(run_until_closed(2s)) << "the end was never seen";
  EXPECT_EQ(sink_.closed->first, close_reason::protocol_error);
  EXPECT_EQ(sink_.closed->second, asio::error::eof);
  EXPECT_EQ(link_->traffic().bytes_out, 0u) << "seen without any write of ours";
}

INSTANTIATE_TEST_SUITE_P(Sockets, link_socket_test,
                         ::testing::Values(socket_kind::unix_stream, socket_kind::tcp_loopback),
                         [](const auto& info) { return test::to_string(info.param); });

}  // namespace
}  // namespace galaxies::transport
