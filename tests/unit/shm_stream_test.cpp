// transport::stream over a shared-memory channel (two rings, an eventfd doorbell per side, the
// socket pair for the end), both ends in one process: every byte arrives in order through small
// rings that fill and empty, whichever side sleeps; the end of one side is seen after its last
// byte; a broken ring, bytes on the socket or a gone peer is an error, never a hang; descriptors
// that are not what a doorbell must be are refused.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/unique_fd.hpp"
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
    shm_channel_fds theirs;
    auto created = shm_channel::create(capacity, theirs);
    memory_.reset(::fcntl(theirs.memory.get(), F_DUPFD_CLOEXEC, 0));
    master_doorbell_.reset(::fcntl(theirs.peer_doorbell.get(), F_DUPFD_CLOEXEC, 0));
    auto opened = shm_channel::open(std::move(theirs));
    const asio::generic::stream_protocol unix_stream(AF_UNIX, SOCK_STREAM);
    master_.emplace(socket(io_, unix_stream, fds[0]), std::move(created));
    worker_.emplace(socket(io_, unix_stream, fds[1]), std::move(opened));
  }

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

  // The rings' memory file and the master's doorbell, for the tests that play the worker's
  // side by hand (a hostile peer, a doorbell rung at a chosen moment).
  base::unique_fd memory_;
  base::unique_fd master_doorbell_;
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
// all), up to a count the eventfd cannot pass, where a ring is refused. A side that goes to
// sleep must take them all at once and still be woken by the next.
TEST_F(shm_stream_test, ASideThatSleepsAfterAFullCountOfStaleDoorbellsIsWokenByTheNext) {
  ASSERT_EQ(::eventfd_write(master_doorbell_.get(), 1), 0);
  ASSERT_EQ(::eventfd_write(master_doorbell_.get(), 0xfffffffffffffffdu), 0);
  ASSERT_NE(::eventfd_write(master_doorbell_.get(), 1), 0) << "the count is not full";
  auto busy = asio::make_work_guard(io_);  // so that poll() runs the reactor
  io_.poll();  // the reactor takes the eventfd's edge while no operation waits on it
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
  ASSERT_EQ(::fstat(memory_.get(), &st), 0);
  EXPECT_NE(::ftruncate(memory_.get(), st.st_size / 2), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(memory_.get(), st.st_size * 2), 0);
}

// What a broken or hostile peer can do to the shared memory: move its index where no ring
// position can be. The reader's operation fails; nothing reads outside the rings.
TEST_F(shm_stream_test, AWriterIndexOutOfRangeFailsTheReadWithAProtocolError) {
  // The worker's ring towards the master is the second half of the memory file.
  struct stat st {};
  ASSERT_EQ(::fstat(memory_.get(), &st), 0);
  void* at = ::mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, memory_.get(), 0);
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

// Bytes on the channel's socket are no doorbell any more (only the end comes that way): a peer
// that sends some has broken the protocol, and both ways fail rather than carry on.
TEST_F(shm_stream_test, AByteOnTheSocketFailsTheChannelWithAProtocolError) {
  std::vector<std::byte> into(100);
  std::optional<std::error_code> result;
  master_->async_read_some(asio::buffer(into),
                           [&](std::error_code ec, std::size_t) { result = ec; });
  const std::byte stray{1};
  std::error_code ec;
  worker_->lowest_layer().send(asio::buffer(&stray, 1), 0, ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(test::run_until(
      io_, [&] { return result.has_value(); }, 5s))
      << "the read sleeps on";
  EXPECT_EQ(*result, std::errc::protocol_error);
  const std::vector<std::byte> bytes(10, std::byte{3});
  EXPECT_EQ(master_->try_write_some(std::array{asio::buffer(bytes)}, ec), 0u);
  EXPECT_EQ(ec, std::errc::protocol_error);
}

// Closing a stream ends what is parked on it: its socket's read and its doorbell's read are both
// cancelled, and neither leaves an operation waiting for good.
TEST_F(shm_stream_test, ClosingAStreamEndsItsParkedReadAndWrite) {
  auto busy = asio::make_work_guard(io_);
  std::vector<std::byte> into(100);
  std::optional<std::error_code> read;
  master_->async_read_some(asio::buffer(into), [&](std::error_code ec, std::size_t) { read = ec; });
  const std::vector<std::byte> fill(4096 + 1000, std::byte{6});  // more than the ring holds
  std::optional<std::error_code> written;
  asio::async_write(*master_, asio::buffer(fill),
                    [&](std::error_code ec, std::size_t) { written = ec; });
  io_.poll();  // both find nothing to do and go to sleep
  ASSERT_FALSE(read.has_value());
  ASSERT_FALSE(written.has_value());
  std::error_code ec;
  master_->close(ec);
  ASSERT_TRUE(test::run_until(
      io_, [&] { return read.has_value() && written.has_value(); }, 5s))
      << "read ended: " << read.has_value() << ", write ended: " << written.has_value();
  EXPECT_EQ(*read, asio::error::operation_aborted);
  EXPECT_EQ(*written, asio::error::operation_aborted);
}

// What a worker is handed comes from another process. A doorbell that is no eventfd, a blocking
// one (a read of it would stop the worker), a semaphore (a read would not reset it) or one
// eventfd for both sides is refused, saying which and why.
TEST(shm_channel_open, RefusesDoorbellsThatAreNotNonBlockingCountingEventfds) {
  const auto open_with = [](auto change) -> std::string {
    shm_channel_fds theirs;
    auto master = shm_channel::create(4096, theirs);
    change(theirs);
    try {
      shm_channel::open(std::move(theirs));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "accepted";
  };
  const auto doorbell = [&](int fd) {
    return open_with([fd](shm_channel_fds& f) { f.doorbell.reset(fd); });
  };
  const auto contains = [](const std::string& text, const char* part) {
    return text.find(part) != std::string::npos;
  };
  EXPECT_EQ(doorbell(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), "accepted");
  int pipe_ends[2];
  ASSERT_EQ(::pipe2(pipe_ends, O_NONBLOCK | O_CLOEXEC), 0);
  base::unique_fd pipe_write(pipe_ends[1]);
  std::string refusal = doorbell(pipe_ends[0]);
  EXPECT_TRUE(contains(refusal, "the doorbell") && contains(refusal, "is not an eventfd"))
      << refusal;
  refusal = doorbell(::eventfd(0, EFD_CLOEXEC));
  EXPECT_TRUE(contains(refusal, "is not non-blocking")) << refusal;
  refusal = doorbell(-1);
  EXPECT_TRUE(contains(refusal, "is no open file descriptor")) << refusal;
  refusal = open_with([](shm_channel_fds& f) { f.peer_doorbell.reset(::dup(f.memory.get())); });
  EXPECT_TRUE(contains(refusal, "the other side's doorbell") && contains(refusal, "not an eventfd"))
      << refusal;

  // What older kernels do not say (fdinfo since 6.2) cannot be checked there.
  const base::unique_fd probe(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  const base::unique_fd info(
      ::open(("/proc/self/fdinfo/" + std::to_string(probe.get())).c_str(), O_RDONLY | O_CLOEXEC));
  char text[1024];
  const ssize_t n = ::read(info.get(), text, sizeof text);
  ASSERT_GT(n, 0);
  const std::string fdinfo(text, static_cast<std::size_t>(n));
  if (!contains(fdinfo, "eventfd-semaphore") || !contains(fdinfo, "eventfd-id"))
    GTEST_SKIP() << "this kernel's fdinfo does not say: " << fdinfo;
  refusal = doorbell(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE));
  EXPECT_TRUE(contains(refusal, "semaphore")) << refusal;
  refusal = open_with([](shm_channel_fds& f) { f.doorbell.reset(::dup(f.peer_doorbell.get())); });
  EXPECT_TRUE(contains(refusal, "one eventfd")) << refusal;
}

// The wait on a doorbell (doorbell_buffer.hpp), on an eventfd of its own: a read that took the
// count tells the reactor the eventfd is drained, and a doorbell rung while no read waits is
// still taken by the next read, whether the reactor saw its edge before that read or after.
class doorbell_read_test : public ::testing::Test {
 protected:
  doorbell_read_test() { EXPECT_TRUE(bell_) << "eventfd"; }

  void ring() { ASSERT_EQ(::eventfd_write(bell_.get(), 1), 0); }

  template <class Buffer>
  void start_read(std::optional<std::error_code>& result) {
    wait_.async_read_some(Buffer(asio::buffer(&count_, sizeof count_)),
                          [&result](std::error_code ec, std::size_t) { result = ec; });
  }

  // A read rung for, taken (the first read of an eventfd is always tried at once).
  template <class Buffer>
  void drain() {
    ring();
    std::optional<std::error_code> result;
    start_read<Buffer>(result);
    ASSERT_TRUE(test::run_until(
        io_, [&] { return result.has_value(); }, 5s));
    ASSERT_FALSE(*result) << result->message();
  }

  // Puts a pipe holding a byte where the eventfd's number was (the reactor keeps the eventfd
  // registered: bell_ keeps it open): a read tried at once reads the pipe and completes, one
  // that waits for the eventfd's edge stays pending.
  void swap_in_a_pipe_with_a_byte() {
    int ends[2];
    ASSERT_EQ(::pipe2(ends, O_NONBLOCK | O_CLOEXEC), 0);
    base::unique_fd read_end(ends[0]), write_end(ends[1]);
    ASSERT_EQ(::write(write_end.get(), "x", 1), 1);
    ASSERT_EQ(::dup3(read_end.get(), wait_.native_handle(), O_CLOEXEC), wait_.native_handle());
  }

  // Whether a read that follows one that took the count is tried at once.
  template <class Buffer>
  bool next_read_is_tried_at_once() {
    drain<Buffer>();
    swap_in_a_pipe_with_a_byte();
    std::optional<std::error_code> result;
    start_read<Buffer>(result);
    io_.poll();
    return result.has_value();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> busy_ = asio::make_work_guard(io_);
  base::unique_fd bell_{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
  asio::posix::stream_descriptor wait_{io_, ::fcntl(bell_.get(), F_DUPFD_CLOEXEC, 0)};
  std::uint64_t count_ = 0;
};

TEST_F(doorbell_read_test, AReadThatTookTheCountMakesTheNextWaitWithoutTryingARead) {
#if ASIO_VERSION != 102201 || !defined(ASIO_HAS_EPOLL)
  GTEST_SKIP() << "doorbell_buffer is a plain buffer with this Asio";
#endif
  EXPECT_FALSE(next_read_is_tried_at_once<doorbell_buffer>());
}

// What the test above would see with Asio's own read: it can tell the two apart.
TEST_F(doorbell_read_test, AsiosOwnReadIsTriedAtOnceAfterTakingTheCount) {
  EXPECT_TRUE(next_read_is_tried_at_once<asio::mutable_buffer>())
      << "Asio's own read waited: the test above proves nothing";
}

TEST_F(doorbell_read_test, ADoorbellRungWhileNoReadWaitsIsTakenByTheNext) {
  const auto next_read_takes_it = [this](const char* when) {
    std::optional<std::error_code> result;
    start_read<doorbell_buffer>(result);
    ASSERT_TRUE(test::run_until(
        io_, [&] { return result.has_value(); }, 5s))
        << "a doorbell whose edge came " << when << " was lost";
    EXPECT_FALSE(*result) << when;
    EXPECT_EQ(count_, 1u) << when;
  };
  drain<doorbell_buffer>();
  ring();
  io_.poll();  // the reactor takes the edge while no read waits
  next_read_takes_it("before the read started");
  ring();  // the reactor has not seen this edge when the read starts
  next_read_takes_it("after the read started");
}

}  // namespace
}  // namespace galaxies::transport
