// transport::stream over a real socket pair (Unix, and TCP on loopback; one process): a read sees
// every byte and the end of the stream, whenever and however together they arrive, with Asio's
// plain reads; draining reads (stream::drain_reads) see every byte, and an end that came with the
// last bytes at the next write (draining_buffer.hpp); try_write_some takes what fits and never
// waits.
#include "transport/stream.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/ssl/context.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "support/eventually.hpp"
#include "support/socket_pair.hpp"

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;
using test::socket_kind;

struct read_result {
  std::error_code error;
  std::size_t n = 0;
};

struct stream_case {
  socket_kind kind;
  bool drain;  // stream::drain_reads
};

void PrintTo(const stream_case& c, std::ostream* out) {
  *out << test::to_string(c.kind) << (c.drain ? ", draining" : ", plain");
}

std::string case_name(const ::testing::TestParamInfo<stream_case>& info) {
  return test::to_string(info.param.kind) + (info.param.drain ? "_draining" : "_plain");
}

class stream_test : public ::testing::TestWithParam<stream_case> {
 protected:
  stream_test() {
    auto [first, second] = test::connected_pair(io_, GetParam().kind);
    ours_.emplace(std::move(first));
    ours_->drain_reads(GetParam().drain);
    theirs_.emplace(std::move(second));
  }

  void SetUp() override {
    if (GetParam().drain && !reads_can_drain)
      GTEST_SKIP() << "reads cannot drain with this Asio or reactor (draining_buffer.hpp)";
  }

  bool tcp() const { return GetParam().kind == socket_kind::tcp_loopback; }

  // Starts a read of at most `size` bytes into buffer_; its result lands in `out`.
  void start_read(std::size_t size, std::optional<read_result>& out) {
    buffer_.assign(size, std::byte{0});
    out.reset();
    ours_->async_read_some(asio::buffer(buffer_), [&out](std::error_code ec, std::size_t n) {
      out = read_result{ec, n};
    });
  }
  std::optional<read_result> read(std::size_t size) {
    std::optional<read_result> out;
    start_read(size, out);
    EXPECT_TRUE(test::run_until(
        io_, [&] { return out.has_value(); }, 2s))
        << "the read hangs";
    return out;
  }
  void peer_writes(std::size_t n) {
    const std::vector<std::byte> bytes(n, std::byte{7});
    EXPECT_EQ(asio::write(*theirs_, asio::buffer(bytes)), n);
  }
  // The peer closes, and the test goes on once its end has reached our socket: bytes written
  // before are then in the same edge as the end.
  void peer_closes() {
    theirs_->close();
    ASSERT_TRUE(test::wait_for_peer_end(ours_->lowest_layer(), 2000ms));
  }
  // A read waits; then the peer's last 10 bytes and its end reach the socket in one edge, and the
  // read takes the bytes: short, yet the end is still to come.
  void bytes_and_the_end_in_one_edge() {
    std::optional<read_result> first;
    start_read(64, first);
    io_.poll();
    ASSERT_FALSE(first) << "nothing to read yet: the read waits for readiness";
    peer_writes(10);
    peer_closes();
    ASSERT_TRUE(test::run_until(
        io_, [&] { return first.has_value(); }, 2s));
    ASSERT_EQ(first->n, 10u);
  }

  asio::io_context io_;
  std::optional<stream> ours_;
  std::optional<socket> theirs_;
  std::vector<std::byte> buffer_;
};

// ---- every read, plain or draining ----

TEST_P(stream_test, AReadAfterAShortReadCompletesWhenTheNextBytesArrive) {
  peer_writes(10);
  ASSERT_EQ(read(64)->n, 10u);  // short: the socket is drained
  std::optional<read_result> next;
  start_read(64, next);
  io_.poll();
  EXPECT_FALSE(next) << "nothing to read yet";
  peer_writes(5);
  ASSERT_TRUE(test::run_until(
      io_, [&] { return next.has_value(); }, 2s));
  EXPECT_EQ(next->n, 5u);
}

TEST_P(stream_test, BytesThatArriveBeforeTheNextReadStartsAreReadAtOnce) {
  peer_writes(10);
  ASSERT_EQ(read(64)->n, 10u);
  peer_writes(3);
  io_.poll();  // the reactor sees the bytes arrive while no read waits
  const auto next = read(64);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->n, 3u);
}

TEST_P(stream_test, AFullReadIsFollowedByTheRestWithoutNewBytes) {
  peer_writes(100);
  EXPECT_EQ(read(64)->n, 64u);
  EXPECT_EQ(read(64)->n, 36u);
}

TEST_P(stream_test, TheEndOfTheStreamAfterAShortReadIsSeen) {
  peer_writes(10);
  ASSERT_EQ(read(64)->n, 10u);
  peer_closes();
  const auto next = read(64);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->error, asio::error::eof);
}

INSTANTIATE_TEST_SUITE_P(Sockets, stream_test,
                         ::testing::Values(stream_case{socket_kind::unix_stream, false},
                                           stream_case{socket_kind::tcp_loopback, false},
                                           stream_case{socket_kind::unix_stream, true},
                                           stream_case{socket_kind::tcp_loopback, true}),
                         case_name);

// ---- Asio's plain reads ----

class plain_stream_test : public stream_test {};

// The peer's last bytes and its close reach the socket before any read: the read that takes the
// bytes is short, yet the end of the stream is still to come, and no new readiness will announce it
// (the reactor is edge-triggered). A short read must not be taken for a drained socket.
TEST_P(plain_stream_test, BytesAndTheEndOfTheStreamArrivingTogetherAreBothSeen) {
  ASSERT_NO_FATAL_FAILURE(bytes_and_the_end_in_one_edge());
  const auto next = read(64);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->error, asio::error::eof);
}

TEST_P(plain_stream_test, TryWriteSomeTakesWhatFitsThenSaysWouldBlock) {
  const std::vector<std::byte> chunk(64 * 1024, std::byte{1});
  std::size_t written = 0;
  std::error_code ec;
  for (int i = 0; i < 1000 && !ec; ++i) written += ours_->try_write_some(asio::buffer(chunk), ec);
  EXPECT_EQ(ec, asio::error::would_block) << "a full socket never blocks the caller";
  EXPECT_GT(written, 0u);
  std::vector<std::byte> in(written);
  EXPECT_EQ(asio::read(*theirs_, asio::buffer(in)), written) << "every byte taken arrives";
}

// On a Unix socket the write fails at once. A TCP write is taken, draws the peer's reset, and the
// next write fails: what a link relies on to see an end it missed (draining_buffer.hpp).
TEST_P(plain_stream_test, TryWriteSomeToAClosedPeerFailsWithoutASignal) {
  peer_closes();
  const std::vector<std::byte> bytes(16, std::byte{1});
  std::error_code ec;
  if (tcp()) {
    EXPECT_EQ(ours_->try_write_some(asio::buffer(bytes), ec), bytes.size());
    EXPECT_FALSE(ec) << ec.message();
    pollfd reset{ours_->lowest_layer().native_handle(), 0, 0};  // POLLERR, POLLHUP: always asked
    ASSERT_EQ(::poll(&reset, 1, 2000), 1) << "no reset came back";
  }
  EXPECT_EQ(ours_->try_write_some(asio::buffer(bytes), ec), 0u);
  EXPECT_EQ(ec, asio::error::broken_pipe);
}

INSTANTIATE_TEST_SUITE_P(Sockets, plain_stream_test,
                         ::testing::Values(stream_case{socket_kind::unix_stream, false},
                                           stream_case{socket_kind::tcp_loopback, false}),
                         case_name);

// ---- draining reads ----

class draining_stream_test : public stream_test {};

// The blind spot, and what shows it. The peer's last bytes and its end come in one edge: the read
// that takes the bytes is short and marks the socket drained, and the next read waits for an edge
// that does not come by itself. Our next write brings it: on TCP the peer's reset is a new edge,
// and the waiting read sees the end; on a Unix socket the write fails, and the end is waiting.
TEST_P(draining_stream_test, AnEndThatCameWithTheLastBytesShowsAtTheNextWrite) {
  ASSERT_NO_FATAL_FAILURE(bytes_and_the_end_in_one_edge());
  std::optional<read_result> next;
  start_read(64, next);
  io_.poll();
  ASSERT_FALSE(next) << "the end was seen without a write: draining reads need no guard";
  EXPECT_TRUE(ours_->end_of_stream_waiting());
  ASSERT_FALSE(next) << "the peek took nothing, and woke nothing";

  const std::vector<std::byte> heartbeat(8, std::byte{4});
  std::error_code ec;
  const std::size_t n = ours_->try_write_some(asio::buffer(heartbeat), ec);
  if (tcp()) {
    EXPECT_EQ(n, heartbeat.size()) << ec.message();
    ASSERT_TRUE(test::run_until(
        io_, [&] { return next.has_value(); }, 2s))
        << "the peer's reset did not wake the waiting read";
    EXPECT_EQ(next->error, asio::error::eof) << "the end came before the reset";
  } else {
    EXPECT_EQ(n, 0u);
    EXPECT_EQ(ec, asio::error::broken_pipe);
    EXPECT_TRUE(ours_->end_of_stream_waiting());
  }
}

TEST_P(draining_stream_test, NoEndIsSeenWhileThePeerIsOpen) {
  peer_writes(10);
  ASSERT_EQ(read(64)->n, 10u);
  EXPECT_FALSE(ours_->end_of_stream_waiting());
  peer_writes(3);
  EXPECT_FALSE(ours_->end_of_stream_waiting()) << "bytes before the end";
  EXPECT_EQ(read(64)->n, 3u) << "the peek took nothing";
}

INSTANTIATE_TEST_SUITE_P(Sockets, draining_stream_test,
                         ::testing::Values(stream_case{socket_kind::unix_stream, true},
                                           stream_case{socket_kind::tcp_loopback, true}),
                         case_name);

// Reads drain only on a plain socket, and only when asked: a TLS stream's records and a ring
// channel's doorbells keep Asio's reads (the doorbell read must see an end that comes with the
// last doorbell, shm_stream_test).
TEST(stream_drain_reads, OnlyAPlainSocketsReadsDrainAndOnlyWhenAsked) {
  asio::io_context io;
  auto plain_pair = test::connected_pair(io, socket_kind::unix_stream);
  stream plain(std::move(plain_pair.first));
  EXPECT_FALSE(plain.drains_reads()) << "off until asked";
  EXPECT_FALSE(plain.end_of_stream_waiting()) << "a plain read sees every end itself";
  plain.drain_reads(true);
  EXPECT_EQ(plain.drains_reads(), reads_can_drain);
  plain.drain_reads(false);
  EXPECT_FALSE(plain.drains_reads());

  asio::ssl::context context(asio::ssl::context::tls_client);
  auto tls_pair = test::connected_pair(io, socket_kind::tcp_loopback);
  stream tls(std::move(tls_pair.first), context, tls_role::client);
  tls.drain_reads(true);
  EXPECT_FALSE(tls.drains_reads());

  shm_channel_fds theirs;  // the other side's: closed as the test ends
  auto rings = shm_channel::create(4096, theirs);
  auto ring_pair = test::connected_pair(io, socket_kind::unix_stream);
  stream ring(std::move(ring_pair.first), std::move(rings));
  ring.drain_reads(true);
  EXPECT_FALSE(ring.drains_reads());
}

}  // namespace
}  // namespace galaxies::transport
