// transport::stream over a shared-memory channel (two rings, the socket pair for doorbells and
// the end), both ends in one process: every byte arrives in order through small rings that fill
// and empty, whichever side sleeps; the end of one side is seen after its last byte; a broken
// ring or a gone peer is an error, never a hang.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <functional>
#include <optional>
#include <random>
#include <vector>

#include "support/eventually.hpp"
#include "transport/stream.hpp"

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;

std::byte nth(std::uint64_t i) {
  return static_cast<std::byte>((i * 131) ^ (i >> 8));
}

class shm_stream_test : public ::testing::Test {
 protected:
  explicit shm_stream_test(std::size_t capacity = 4096) {
    int fds[2] = {-1, -1};
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    auto created = shm_channel::create(capacity, memory_);
    auto opened = shm_channel::open(memory_);
    const asio::generic::stream_protocol unix_stream(AF_UNIX, SOCK_STREAM);
    master_.emplace(socket(io_, unix_stream, fds[0]), std::move(created));
    worker_.emplace(socket(io_, unix_stream, fds[1]), std::move(opened));
  }

  ~shm_stream_test() override { ::close(memory_); }

  // Reads the master's side until an error (the end, normally), adding up the bytes.
  void read_to_the_end(std::vector<std::byte>& into, std::size_t& got, std::error_code& end) {
    master_->async_read_some(asio::buffer(into),
                             [this, &into, &got, &end](std::error_code ec, std::size_t n) {
                               got += n;
                               if (ec)
                                 end = ec;
                               else
                                 read_to_the_end(into, got, end);
                             });
  }

  int memory_ = -1;  // the rings' memory file, for the tests that play a hostile peer
  asio::io_context io_;
  std::optional<stream> master_;
  std::optional<stream> worker_;
};

TEST_F(shm_stream_test, EveryByteArrivesInOrderThroughRingsThatFillAndEmpty) {
  constexpr std::size_t total = 4u << 20;
  std::vector<std::byte> sent(total);
  for (std::size_t i = 0; i < total; ++i) sent[i] = nth(i);
  std::size_t written = 0;
  std::mt19937 rng(11);
  std::function<void()> write_next = [&] {
    if (written == total) return;
    const std::size_t n = std::min<std::size_t>(1 + rng() % 9000, total - written);
    asio::async_write(*worker_, asio::buffer(sent.data() + written, n),
                      [&, n](std::error_code ec, std::size_t) {
                        ASSERT_FALSE(ec) << ec.message();
                        written += n;
                        write_next();
                      });
  };
  std::vector<std::byte> got;
  std::vector<std::byte> buffer(5000);
  std::function<void()> read_next = [&] {
    master_->async_read_some(asio::buffer(buffer, 1 + rng() % buffer.size()),
                             [&](std::error_code ec, std::size_t n) {
                               ASSERT_FALSE(ec) << ec.message();
                               got.insert(got.end(), buffer.begin(), buffer.begin() + n);
                               if (got.size() < total) read_next();
                             });
  };
  write_next();
  read_next();
  ASSERT_TRUE(test::run_until(
      io_, [&] { return got.size() == total; }, 20s))
      << got.size() << " of " << total << " bytes";
  EXPECT_TRUE(got == sent);
}

TEST_F(shm_stream_test, TheEndOfOneSideIsSeenAfterItsLastByte) {
  const std::vector<std::byte> bytes(1000, std::byte{9});
  std::error_code written;
  ASSERT_EQ(worker_->try_write_some(std::array{asio::buffer(bytes)}, written), bytes.size());
  std::error_code ignored;
  worker_->close(ignored);
  std::vector<std::byte> into(4096);
  std::size_t got = 0;
  std::error_code end;
  read_to_the_end(into, got, end);
  ASSERT_TRUE(test::run_until(
      io_, [&] { return bool(end); }, 5s))
      << "the read hangs";
  EXPECT_EQ(got, bytes.size());
  EXPECT_EQ(end, asio::error::eof);
}

TEST_F(shm_stream_test, AWriteToAGoneSideFailsInsteadOfWaitingForRoom) {
  std::error_code ignored;
  master_->close(ignored);
  const std::vector<std::byte> bytes(64 * 1024, std::byte{1});  // more than the ring holds
  std::optional<std::error_code> result;
  asio::async_write(*worker_, asio::buffer(bytes),
                    [&](std::error_code ec, std::size_t) { result = ec; });
  ASSERT_TRUE(test::run_until(
      io_, [&] { return result.has_value(); }, 5s))
      << "the write hangs";
  EXPECT_EQ(*result, asio::error::broken_pipe);
}

TEST_F(shm_stream_test, TryWriteSomeTakesWhatFitsAndNeverWaits) {
  const std::vector<std::byte> bytes(10000, std::byte{2});
  std::error_code ec;
  EXPECT_EQ(worker_->try_write_some(std::array{asio::buffer(bytes)}, ec), 4096u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(worker_->try_write_some(std::array{asio::buffer(bytes)}, ec), 0u);
  EXPECT_EQ(ec, asio::error::would_block);
  std::error_code available_ec;
  EXPECT_EQ(master_->available(available_ec), 4096u);
}

// Doorbells pile up while a side is busy (the other rings for a look that then found bytes after
// all) until the socket refuses more. A side that goes to sleep must still be woken by the next.
TEST_F(shm_stream_test, ASideThatSleepsBehindASocketFullOfStaleDoorbellsIsWokenByTheNext) {
  const std::byte bell{1};
  std::size_t stale = 0;
  for (std::error_code ec; !ec; ++stale)
    worker_->lowest_layer().send(asio::buffer(&bell, 1), 0, ec);
  ASSERT_GT(stale, 1u);
  auto busy = asio::make_work_guard(io_);  // so that poll() runs the reactor
  io_.poll();  // the reactor takes the socket's edge while no operation waits on it
  std::vector<std::byte> into(100);
  std::optional<std::size_t> got;
  master_->async_read_some(asio::buffer(into), [&](std::error_code ec, std::size_t n) {
    EXPECT_FALSE(ec) << ec.message();
    got = n;
  });
  io_.poll();  // the read finds nothing and goes to sleep
  ASSERT_FALSE(got.has_value());
  const std::vector<std::byte> bytes(10, std::byte{4});
  std::error_code ec;
  ASSERT_EQ(worker_->try_write_some(std::array{asio::buffer(bytes)}, ec), bytes.size());
  ASSERT_TRUE(test::run_until(
      io_, [&] { return got.has_value(); }, 5s))
      << "the read sleeps on";
  EXPECT_EQ(*got, bytes.size());
}

// The doorbell that wakes a sleeping read and the end of the other side can reach the socket
// together, in one edge of the reactor: the read still gets the last bytes, and then the end.
TEST_F(shm_stream_test, TheEndThatComesWithTheLastDoorbellIsSeen) {
  auto busy = asio::make_work_guard(io_);  // so that poll() runs the reactor
  std::vector<std::byte> into(100);
  std::size_t got = 0;
  std::error_code end;
  read_to_the_end(into, got, end);
  io_.poll();  // the read finds nothing and goes to sleep
  ASSERT_EQ(got, 0u);
  const std::vector<std::byte> bytes(10, std::byte{5});
  std::error_code ec;
  ASSERT_EQ(worker_->try_write_some(std::array{asio::buffer(bytes)}, ec), bytes.size());
  worker_->close(ec);
  ASSERT_TRUE(test::run_until(
      io_, [&] { return bool(end); }, 5s))
      << "the read sleeps on after " << got << " bytes";
  EXPECT_EQ(got, bytes.size());
  EXPECT_EQ(end, asio::error::eof);
}

// One side's read sleeps for bytes while its write sleeps for room; the other side then reads
// (one doorbell: room) and writes (another: bytes). Whichever doorbell is taken first, both
// operations wake: neither may take the other's.
TEST_F(shm_stream_test, AReadAndAWriteAsleepTogetherAreBothWoken) {
  auto busy = asio::make_work_guard(io_);
  std::vector<std::byte> into(100);
  std::optional<std::size_t> read;
  master_->async_read_some(asio::buffer(into), [&](std::error_code ec, std::size_t n) {
    EXPECT_FALSE(ec) << ec.message();
    read = n;
  });
  const std::vector<std::byte> fill(4096, std::byte{6});  // the whole ring
  std::error_code ec;
  ASSERT_EQ(master_->try_write_some(std::array{asio::buffer(fill)}, ec), fill.size());
  const std::vector<std::byte> more(1000, std::byte{7});
  std::optional<std::size_t> written;
  master_->async_write_some(asio::buffer(more), [&](std::error_code ec, std::size_t n) {
    EXPECT_FALSE(ec) << ec.message();
    written = n;
  });
  io_.poll();  // both find nothing to do and go to sleep
  ASSERT_FALSE(read.has_value());
  ASSERT_FALSE(written.has_value());
  std::vector<std::byte> drained(fill.size());
  std::size_t taken = 0;
  worker_->async_read_some(asio::buffer(drained),
                           [&](std::error_code ec, std::size_t n) { taken = ec ? 0 : n; });
  ASSERT_TRUE(test::run_until(
      io_, [&] { return taken > 0; }, 5s));
  const std::vector<std::byte> bytes(10, std::byte{8});
  ASSERT_EQ(worker_->try_write_some(std::array{asio::buffer(bytes)}, ec), bytes.size());
  ASSERT_TRUE(test::run_until(
      io_, [&] { return read.has_value() && written.has_value(); }, 5s))
      << "read woken: " << read.has_value() << ", write woken: " << written.has_value();
  EXPECT_EQ(*read, bytes.size());
  EXPECT_GT(*written, 0u);
}

// The other process holds the memory file too: a file it could shrink would make the creator's
// next access to the mapping past the end a SIGBUS.
TEST_F(shm_stream_test, TheOtherSideCannotResizeTheRingsMemory) {
  struct stat st {};
  ASSERT_EQ(::fstat(memory_, &st), 0);
  EXPECT_NE(::ftruncate(memory_, st.st_size / 2), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(memory_, st.st_size * 2), 0);
}

// What a broken or hostile peer can do to the shared memory: move its index where no ring
// position can be. The reader's operation fails; nothing reads outside the rings.
TEST_F(shm_stream_test, AWriterIndexOutOfRangeFailsTheReadWithAProtocolError) {
  // The worker's ring towards the master is the second half of the memory file.
  struct stat st {};
  ASSERT_EQ(::fstat(memory_, &st), 0);
  void* at = ::mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, memory_, 0);
  ASSERT_NE(at, MAP_FAILED);
  auto* towards_master =
      reinterpret_cast<shm_ring_header*>(static_cast<std::byte*>(at) + st.st_size / 2);
  towards_master->head.store(1u << 30);
  std::vector<std::byte> into(100);
  std::optional<std::error_code> result;
  master_->async_read_some(asio::buffer(into),
                           [&](std::error_code ec, std::size_t) { result = ec; });
  ASSERT_TRUE(test::run_until(
      io_, [&] { return result.has_value(); }, 5s))
      << "the read hangs";
  EXPECT_EQ(*result, std::errc::protocol_error);
  ::munmap(at, st.st_size);
}

}  // namespace
}  // namespace galaxies::transport
