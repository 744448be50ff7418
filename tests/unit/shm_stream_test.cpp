// transport::stream over a shared-memory channel (two rings, a pipe doorbell per side, the
// socket pair for the end), both ends in one process: every byte arrives in order through small
// rings that fill and empty, whichever side sleeps; the end of one side is seen after its last
// byte; a broken ring, bytes on the socket or a gone peer is an error, never a hang; a worker
// that floods or blocks its doorbells never stops its master; descriptors that are not what a
// doorbell must be are refused.
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
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.hpp"
#include "link_test_support.hpp"
#include "support/eventually.hpp"
#include "transport/link.hpp"
#include "transport/stream.hpp"

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;

std::byte nth(std::uint64_t i) {
  return static_cast<std::byte>((i * 131) ^ (i >> 8));
}

// Writes to a non-blocking pipe end until the pipe is full; returns how much it took.
std::size_t fill_pipe(int fd) {
  const std::vector<char> chunk(4096, 'x');
  std::size_t total = 0;
  for (;;) {
    const ssize_t n = ::write(fd, chunk.data(), chunk.size());
    if (n < 0) {
      EXPECT_EQ(errno, EAGAIN) << "the pipe is not full";
      return total;
    }
    total += static_cast<std::size_t>(n);
  }
}

void set_blocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  ASSERT_GE(flags, 0);
  ASSERT_EQ(::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK), 0);
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

// A worker's last frames reach its master even when the master writes after the channel's end is
// known and before its reader has taken them (here the reader is held back): the write fails, and
// the reader delivers them and then reports the end, not an i/o error.
TEST_F(shm_stream_test, AWorkersLastFramesArriveThoughTheMastersWriteMetTheEndFirst) {
  using namespace link_support;
  recording_sink sink;
  link_settings settings;
  settings.max_write_chunk = 64;  // so that a failed write leaves frames queued
  const auto l = std::make_shared<link>(std::move(*master_), settings);
  master_.reset();
  sink.hook = [&](const wire::frame_view&) {
    if (sink.frames.size() == 1) l->pause_reading();
  };
  l->start(&sink);
  while (io_.poll() > 0) {
  }  // the reader finds the ring empty and parks: from then on the socket's end is watched
  std::error_code ec;
  const auto first = message_frame(1, 100);
  ASSERT_EQ(worker_->try_write_some(std::array{asio::buffer(first)}, ec), first.size());
  ASSERT_TRUE(test::run_until(
      io_, [&] { return sink.frames.size() == 1; }, 5s));
  const auto rest = concat({message_frame(2, 100), message_frame(3, 100)});
  ASSERT_EQ(worker_->try_write_some(std::array{asio::buffer(rest)}, ec), rest.size());
  worker_->close(ec);
  ASSERT_TRUE(test::run_until(
      io_, [&] { return l->stream().end_left_to_reader(); }, 5s));

  // What is queued goes nowhere now, and must not wait for the reader to be dropped: links held
  // back on this queue are released at once (one of them may be what holds this reader).
  l->notify_drained_below(0);
  ASSERT_TRUE(l->enqueue(concat({message_frame(9, 100), message_frame(10, 100)})));
  ASSERT_TRUE(test::run_until(
      io_, [&] { return sink.drained == 1; }, 5s));
  EXPECT_EQ(l->queued_bytes(), 0u);
  EXPECT_FALSE(l->writable());
  EXPECT_FALSE(l->enqueue(message_frame(11, 10)));
  EXPECT_FALSE(sink.closed()) << "the write ended the connection before its reader";
  l->resume_reading();
  ASSERT_TRUE(test::run_until(
      io_, [&] { return sink.closed(); }, 5s));
  EXPECT_EQ(sink.frames,
            (std::vector<frame_bytes>{first, message_frame(2, 100), message_frame(3, 100)}));
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::eof);
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
// all), up to a full pipe, where a ring is refused. A side that goes to sleep must take them all
// and still be woken by the next.
TEST_F(shm_stream_test, ASideThatSleepsAfterAFullPipeOfStaleDoorbellsIsWokenByTheNext) {
  ASSERT_GT(fill_pipe(master_doorbell_.get()), 0u);
  auto busy = asio::make_work_guard(io_);  // so that poll() runs the reactor
  io_.poll();  // the reactor takes the pipe's edge while no operation waits on it
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

// What a worker is handed comes from another process. A doorbell that is no pipe (an eventfd, a
// socket, a closed fd), a pipe's end other than the one due, or one pipe for both sides is
// refused, saying which and why; a blocking end is taken and made non-blocking (it is ours alone).
TEST(shm_channel_open, RefusesDoorbellsThatAreNotTheRightEndsOfTwoPipes) {
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
  const auto peer_doorbell = [&](int fd) {
    return open_with([fd](shm_channel_fds& f) { f.peer_doorbell.reset(fd); });
  };
  const auto contains = [](const std::string& text, const char* part) {
    return text.find(part) != std::string::npos;
  };
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);  // blocking, as a hostile master might hand them
  base::unique_fd read_end(ends[0]), write_end(ends[1]);
  EXPECT_EQ(doorbell(::dup(read_end.get())), "accepted");
  EXPECT_NE(::fcntl(read_end.get(), F_GETFL) & O_NONBLOCK, 0) << "the doorbell was left blocking";
  EXPECT_EQ(peer_doorbell(::dup(write_end.get())), "accepted");
  EXPECT_NE(::fcntl(write_end.get(), F_GETFL) & O_NONBLOCK, 0) << "the peer's was left blocking";

  std::string refusal = doorbell(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  EXPECT_TRUE(contains(refusal, "the doorbell") && contains(refusal, "is not a pipe")) << refusal;
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  base::unique_fd other_socket(pair[1]);
  refusal = peer_doorbell(pair[0]);
  EXPECT_TRUE(contains(refusal, "the other side's doorbell") && contains(refusal, "is not a pipe"))
      << refusal;
  refusal = doorbell(-1);
  EXPECT_TRUE(contains(refusal, "is no open file descriptor")) << refusal;
  refusal = doorbell(::dup(write_end.get()));
  EXPECT_TRUE(contains(refusal, "is not a pipe's read end")) << refusal;
  refusal = peer_doorbell(::dup(read_end.get()));
  EXPECT_TRUE(contains(refusal, "is not a pipe's write end")) << refusal;
  refusal = open_with([&](shm_channel_fds& f) {
    f.doorbell.reset(::dup(read_end.get()));
    f.peer_doorbell.reset(::dup(write_end.get()));
  });
  EXPECT_TRUE(contains(refusal, "are ends of one pipe")) << refusal;
}

// The wait on a doorbell (doorbell_buffer.hpp), on a pipe of its own: a read that came back short
// tells the reactor the pipe is drained, one that filled the buffer does not, and a doorbell rung
// while no read waits is still taken by the next read, whether the reactor saw its edge before
// that read or after.
class doorbell_read_test : public ::testing::Test {
 protected:
  doorbell_read_test() {
    int ends[2] = {-1, -1};
    EXPECT_EQ(::pipe2(ends, O_NONBLOCK | O_CLOEXEC), 0);
    read_end_.reset(ends[0]);
    write_end_.reset(ends[1]);
    wait_.assign(::fcntl(read_end_.get(), F_DUPFD_CLOEXEC, 0));
  }

  void ring(std::size_t bytes = 1) {
    const std::vector<char> bells(bytes, 'x');
    ASSERT_EQ(::write(write_end_.get(), bells.data(), bytes), static_cast<ssize_t>(bytes));
  }

  template <class Buffer>
  void start_read(std::optional<std::error_code>& result, std::size_t& taken) {
    wait_.async_read_some(Buffer(asio::buffer(buffer_)),
                          [&result, &taken](std::error_code ec, std::size_t n) {
                            result = ec;
                            taken = n;
                          });
  }

  // A read rung for, taken (the first read of a descriptor is always tried at once).
  template <class Buffer>
  void drain() {
    ring();
    std::optional<std::error_code> result;
    std::size_t taken = 0;
    start_read<Buffer>(result, taken);
    ASSERT_TRUE(test::run_until(
        io_, [&] { return result.has_value(); }, 5s));
    ASSERT_FALSE(*result) << result->message();
  }

  // Puts another pipe holding a byte where the doorbell's read end was (the reactor keeps the
  // doorbell registered: read_end_ keeps its open file): a read tried at once reads the other
  // pipe and completes, one that waits for the doorbell's edge stays pending.
  void swap_in_a_pipe_with_a_byte() {
    int ends[2];
    ASSERT_EQ(::pipe2(ends, O_NONBLOCK | O_CLOEXEC), 0);
    base::unique_fd read_end(ends[0]), write_end(ends[1]);
    ASSERT_EQ(::write(write_end.get(), "x", 1), 1);
    ASSERT_EQ(::dup3(read_end.get(), wait_.native_handle(), O_CLOEXEC), wait_.native_handle());
  }

  // Whether a read that follows one that emptied the pipe is tried at once.
  template <class Buffer>
  bool next_read_is_tried_at_once() {
    drain<Buffer>();
    swap_in_a_pipe_with_a_byte();
    std::optional<std::error_code> result;
    std::size_t taken = 0;
    start_read<Buffer>(result, taken);
    io_.poll();
    return result.has_value();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> busy_ = asio::make_work_guard(io_);
  base::unique_fd read_end_;
  base::unique_fd write_end_;
  asio::posix::stream_descriptor wait_{io_};
  std::array<std::byte, 256> buffer_{};
};

TEST_F(doorbell_read_test, AReadThatEmptiedThePipeMakesTheNextWaitWithoutTryingARead) {
#if ASIO_VERSION != 102201 || !defined(ASIO_HAS_EPOLL)
  GTEST_SKIP() << "doorbell_buffer is a plain buffer with this Asio";
#endif
  EXPECT_FALSE(next_read_is_tried_at_once<doorbell_buffer>());
}

// What the test above would see with Asio's own read: it can tell the two apart.
TEST_F(doorbell_read_test, AsiosOwnReadIsTriedAtOnceAfterEmptyingThePipe) {
  EXPECT_TRUE(next_read_is_tried_at_once<asio::mutable_buffer>())
      << "Asio's own read waited: the test above proves nothing";
}

TEST_F(doorbell_read_test, ADoorbellRungWhileNoReadWaitsIsTakenByTheNext) {
  const auto next_read_takes_it = [this](const char* when) {
    std::optional<std::error_code> result;
    std::size_t taken = 0;
    start_read<doorbell_buffer>(result, taken);
    ASSERT_TRUE(test::run_until(
        io_, [&] { return result.has_value(); }, 5s))
        << "a doorbell whose edge came " << when << " was lost";
    EXPECT_FALSE(*result) << when;
    EXPECT_EQ(taken, 1u) << when;
  };
  drain<doorbell_buffer>();
  ring();
  io_.poll();  // the reactor takes the edge while no read waits
  next_read_takes_it("before the read started");
  ring();  // the reactor has not seen this edge when the read starts
  next_read_takes_it("after the read started");
}

// A read that filled the buffer may have left doorbells in the pipe: the next read takes them at
// once, with no new edge to wait for.
TEST_F(doorbell_read_test, AReadThatFilledTheBufferLeavesTheNextReadTriedAtOnce) {
  ring(buffer_.size() + 44);
  std::optional<std::error_code> result;
  std::size_t taken = 0;
  start_read<doorbell_buffer>(result, taken);
  ASSERT_TRUE(test::run_until(
      io_, [&] { return result.has_value(); }, 5s));
  ASSERT_EQ(taken, buffer_.size());
  result.reset();
  start_read<doorbell_buffer>(result, taken);
  io_.poll();
  ASSERT_TRUE(result.has_value()) << "the rest waits for an edge that will not come";
  EXPECT_FALSE(*result) << result->message();
  EXPECT_EQ(taken, 44u);
}

// Ends a test that would hang for good (a process stopped in a syscall cannot be polled out of
// it): past `limit`, says `what` and exits the test program with a failure.
class watchdog {
 public:
  watchdog(std::chrono::seconds limit, const char* what)
      : thread_([this, limit, what] {
          if (done_.get_future().wait_for(limit) == std::future_status::timeout) {
            std::fprintf(stderr, "watchdog: %s\n", what);
            std::_Exit(EXIT_FAILURE);
          }
        }) {}
  ~watchdog() {
    done_.set_value();
    thread_.join();
  }

 private:
  std::promise<void> done_;
  std::thread thread_;
};

// The master's side of a channel as a real stream, the worker's played by hand: a hostile or
// broken worker holds its doorbells' ends and the rings, and does with them what it likes.
class hostile_worker_test : public ::testing::Test {
 protected:
  hostile_worker_test() {
    int fds[2] = {-1, -1};
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    worker_socket_.reset(fds[1]);
    shm_channel_fds theirs;
    auto created = shm_channel::create(4096, theirs);
    // The worker's own open files (each shared with worker_rings_, as in a worker process).
    memory_.reset(::fcntl(theirs.memory.get(), F_DUPFD_CLOEXEC, 0));
    worker_doorbell_.reset(::fcntl(theirs.doorbell.get(), F_DUPFD_CLOEXEC, 0));
    master_doorbell_.reset(::fcntl(theirs.peer_doorbell.get(), F_DUPFD_CLOEXEC, 0));
    worker_rings_ = shm_channel::open(std::move(theirs));
    const asio::generic::stream_protocol unix_stream(AF_UNIX, SOCK_STREAM);
    master_.emplace(socket(io_, unix_stream, fds[0]), std::move(created));
  }

  base::unique_fd worker_socket_;
  base::unique_fd memory_;
  base::unique_fd worker_doorbell_;  // the read end of the worker's pipe
  base::unique_fd master_doorbell_;  // the write end of the master's pipe
  std::unique_ptr<shm_channel> worker_rings_;
  asio::io_context io_;
  std::optional<stream> master_;
};

// Issue #8, the hole eventfd doorbells had: a worker that makes its doorbells blocking and fills
// them must not stop its master in a ring or a wait. Here the worker fills the master's pipe and
// its own (through a write end of its own, opened by path, as any process can), clears
// O_NONBLOCK on every end it holds and announces that it sleeps, so that every frame the master
// writes rings a full pipe. The master writes and reads frames on, and nothing of it blocks.
TEST_F(hostile_worker_test, AWorkerThatFloodsAndBlocksItsDoorbellsNeverStopsTheMaster) {
  const std::string path = "/proc/self/fd/" + std::to_string(worker_doorbell_.get());
  const base::unique_fd own_writer(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(own_writer) << path << ": " << std::strerror(errno);
  // What the worker rings its master through below: an end of its own that cannot stop the test.
  const std::string master_path = "/proc/self/fd/" + std::to_string(master_doorbell_.get());
  const base::unique_fd ring_master(::open(master_path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(ring_master) << master_path << ": " << std::strerror(errno);
  ASSERT_GT(fill_pipe(master_doorbell_.get()), 0u);
  ASSERT_GT(fill_pipe(own_writer.get()), 0u);
  for (const int fd : {worker_doorbell_.get(), master_doorbell_.get(), own_writer.get()})
    set_blocking(fd);
  // The master's ring towards the worker, the first half of the memory file: its reader's flag
  // tells whether the master rang (it clears the flag as it rings).
  struct stat st {};
  ASSERT_EQ(::fstat(memory_.get(), &st), 0);
  void* at = ::mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, memory_.get(), 0);
  ASSERT_NE(at, MAP_FAILED);
  const auto unmap = std::unique_ptr<void, std::function<void(void*)>>(
      at, [size = st.st_size](void* p) { ::munmap(p, size); });
  const auto& towards_worker = *static_cast<const shm_ring_header*>(at);

  const watchdog guard(60s, "the master blocked on a hostile worker's doorbells");
  constexpr int rounds = 200;
  std::vector<std::byte> frame(1000);
  std::vector<std::byte> seen(frame.size());
  std::vector<std::byte> echoed(frame.size());
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t i = 0; i < frame.size(); ++i) frame[i] = nth(i + round);
    ASSERT_TRUE(worker_rings_->in.wait_for_bytes()) << "round " << round;
    std::optional<std::error_code> written;
    asio::async_write(*master_, asio::buffer(frame),
                      [&](std::error_code ec, std::size_t) { written = ec; });
    std::optional<std::error_code> read;
    asio::async_read(*master_, asio::buffer(echoed),
                     [&](std::error_code ec, std::size_t) { read = ec; });
    ASSERT_TRUE(test::run_until(
        io_, [&] { return written.has_value(); }, 5s))
        << "round " << round;
    ASSERT_FALSE(*written) << written->message();
    EXPECT_EQ(towards_worker.reader_waiting.load(), 0u)
        << "the master did not ring, round " << round;
    const auto got = worker_rings_->in.read(seen);
    ASSERT_EQ(got.bytes, frame.size()) << "round " << round;
    ASSERT_TRUE(seen == frame) << "round " << round;
    // The worker answers, ringing the master as a worker does, when the master sleeps (a pipe
    // still full of the flood has told it enough).
    ASSERT_EQ(worker_rings_->out.write(seen).bytes, seen.size());
    if (worker_rings_->out.take_reader_waiting()) {
      const ssize_t n = ::write(ring_master.get(), "x", 1);
      ASSERT_TRUE(n == 1 || errno == EAGAIN) << std::strerror(errno);
    }
    ASSERT_TRUE(test::run_until(
        io_, [&] { return read.has_value(); }, 5s))
        << "round " << round;
    ASSERT_FALSE(*read) << read->message();
    ASSERT_TRUE(echoed == frame) << "round " << round;
  }
}

// A worker that closes the end it rings its master through, its socket still open, is gone or
// broken: the master's parked operations learn the end, and nothing waits on that pipe again.
TEST_F(hostile_worker_test, TheMastersDoorbellClosedByTheWorkerIsTheEnd) {
  std::vector<std::byte> into(100);
  std::optional<std::error_code> read;
  master_->async_read_some(asio::buffer(into), [&](std::error_code ec, std::size_t) { read = ec; });
  auto busy = asio::make_work_guard(io_);
  io_.poll();  // the read finds nothing and goes to sleep
  ASSERT_FALSE(read.has_value());
  worker_rings_.reset();
  master_doorbell_.reset();
  ASSERT_TRUE(test::run_until(
      io_, [&] { return read.has_value(); }, 5s))
      << "the read sleeps on a doorbell nobody can ring";
  EXPECT_EQ(*read, asio::error::eof);
  const std::vector<std::byte> bytes(10, std::byte{3});
  std::error_code ec;
  EXPECT_EQ(master_->try_write_some(std::array{asio::buffer(bytes)}, ec), 0u);
  EXPECT_EQ(ec, asio::error::broken_pipe);
}

}  // namespace
}  // namespace galaxies::transport
