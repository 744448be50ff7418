// transport::stream over a real socket pair (Unix, one process): a read sees every byte and the
// end of the stream, whenever and however together they arrive (a short read does not mean the
// socket has nothing more to say); try_write_some takes what fits and never waits.
#include "transport/stream.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstddef>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "support/eventually.hpp"

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;

struct read_result {
  std::error_code error;
  std::size_t n = 0;
};

class stream_test : public ::testing::Test {
 protected:
  stream_test() {
    int fds[2] = {-1, -1};
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    const asio::generic::stream_protocol unix_stream(AF_UNIX, SOCK_STREAM);
    ours_.emplace(socket(io_, unix_stream, fds[0]));
    theirs_.emplace(io_, unix_stream, fds[1]);
  }

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

  asio::io_context io_;
  std::optional<stream> ours_;
  std::optional<socket> theirs_;
  std::vector<std::byte> buffer_;
};

TEST_F(stream_test, AReadAfterAShortReadCompletesWhenTheNextBytesArrive) {
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

TEST_F(stream_test, BytesThatArriveBeforeTheNextReadStartsAreReadAtOnce) {
  peer_writes(10);
  ASSERT_EQ(read(64)->n, 10u);
  peer_writes(3);
  io_.poll();  // the reactor sees the bytes arrive while no read waits
  const auto next = read(64);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->n, 3u);
}

TEST_F(stream_test, AFullReadIsFollowedByTheRestWithoutNewBytes) {
  peer_writes(100);
  EXPECT_EQ(read(64)->n, 64u);
  EXPECT_EQ(read(64)->n, 36u);
}

TEST_F(stream_test, TheEndOfTheStreamAfterAShortReadIsSeen) {
  peer_writes(10);
  ASSERT_EQ(read(64)->n, 10u);
  theirs_->close();
  const auto next = read(64);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->error, asio::error::eof);
}

// The peer's last bytes and its close reach the socket before any read: the read that takes the
// bytes is short, yet the end of the stream is still to come, and no new readiness will announce it
// (the reactor is edge-triggered). A short read must not be taken for a drained socket.
TEST_F(stream_test, BytesAndTheEndOfTheStreamArrivingTogetherAreBothSeen) {
  std::optional<read_result> first;
  start_read(64, first);
  io_.poll();
  ASSERT_FALSE(first) << "nothing to read yet: the read waits for readiness";
  peer_writes(10);
  theirs_->close();
  ASSERT_TRUE(test::run_until(
      io_, [&] { return first.has_value(); }, 2s));
  ASSERT_EQ(first->n, 10u);
  const auto next = read(64);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->error, asio::error::eof);
}

TEST_F(stream_test, TryWriteSomeTakesWhatFitsThenSaysWouldBlock) {
  const std::vector<std::byte> chunk(64 * 1024, std::byte{1});
  std::size_t written = 0;
  std::error_code ec;
  for (int i = 0; i < 1000 && !ec; ++i) written += ours_->try_write_some(asio::buffer(chunk), ec);
  EXPECT_EQ(ec, asio::error::would_block) << "a full socket never blocks the caller";
  EXPECT_GT(written, 0u);
  std::vector<std::byte> in(written);
  EXPECT_EQ(asio::read(*theirs_, asio::buffer(in)), written) << "every byte taken arrives";
}

TEST_F(stream_test, TryWriteSomeToAClosedPeerFailsWithoutASignal) {
  theirs_->close();
  const std::vector<std::byte> bytes(16, std::byte{1});
  std::error_code ec;
  EXPECT_EQ(ours_->try_write_some(asio::buffer(bytes), ec), 0u);
  EXPECT_EQ(ec, asio::error::broken_pipe);
}

}  // namespace
}  // namespace galaxies::transport
