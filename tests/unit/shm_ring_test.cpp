// transport/shm_ring: the byte ring a worker's channel will run on, tested in one process.
#include "transport/shm_ring.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <random>
#include <thread>
#include <vector>

namespace galaxies::transport {
namespace {

// A zeroed, aligned region for a ring of `capacity` bytes, as both processes would map it.
struct region {
  explicit region(std::size_t capacity)
      : capacity(capacity), memory(shm_ring_region_size(capacity) / 64 + 1) {}
  std::span<std::byte> bytes() {
    return std::as_writable_bytes(std::span(memory)).first(shm_ring_region_size(capacity));
  }
  shm_ring_header& header() { return *reinterpret_cast<shm_ring_header*>(memory.data()); }

  struct alignas(64) line {
    std::byte bytes[64];
  };
  std::size_t capacity;
  std::vector<line> memory;
};

// The byte at position i of the stream a test sends: every byte tells where it belongs.
std::byte nth(std::uint64_t i) {
  return static_cast<std::byte>((i * 131) ^ (i >> 8));
}

std::vector<std::byte> stream_bytes(std::uint64_t from, std::size_t n) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = nth(from + i);
  return out;
}

TEST(shm_ring, BytesComeOutInOrderAcrossTheWrapInAnyChunkSizes) {
  region r(256);
  shm_ring_writer writer(r.bytes());
  shm_ring_reader reader(r.bytes());
  ASSERT_EQ(writer.capacity(), 256u);
  std::mt19937 rng(3);
  std::uint64_t written = 0;
  std::uint64_t read = 0;
  for (int step = 0; step < 20000; ++step) {
    const auto chunk = stream_bytes(written, rng() % 300);
    const auto w = writer.write(chunk);
    ASSERT_FALSE(w.broken);
    written += w.bytes;
    std::vector<std::byte> into(rng() % 300);
    const auto got = reader.read(into);
    ASSERT_FALSE(got.broken);
    for (std::size_t i = 0; i < got.bytes; ++i) ASSERT_EQ(into[i], nth(read + i)) << read + i;
    read += got.bytes;
    ASSERT_LE(written - read, 256u);
  }
  EXPECT_GT(read, 100u * 256);  // wrapped many times
}

TEST(shm_ring, AFullRingTakesWhatFitsThenNothingUntilRead) {
  region r(64);
  shm_ring_writer writer(r.bytes());
  shm_ring_reader reader(r.bytes());
  EXPECT_EQ(writer.write(stream_bytes(0, 50)).bytes, 50u);
  EXPECT_EQ(writer.write(stream_bytes(50, 50)).bytes, 14u);
  EXPECT_EQ(writer.write(stream_bytes(64, 1)).bytes, 0u);
  std::vector<std::byte> into(10);
  EXPECT_EQ(reader.read(into).bytes, 10u);
  EXPECT_EQ(writer.write(stream_bytes(64, 50)).bytes, 10u);
  std::vector<std::byte> rest(100);
  EXPECT_EQ(reader.read(rest).bytes, 64u);
  EXPECT_EQ(rest[63], nth(73));
  EXPECT_EQ(reader.read(rest).bytes, 0u);
}

TEST(shm_ring, AWriterIndexOutOfRangeBreaksTheRingForTheReader) {
  for (const std::uint64_t head : {std::uint64_t{65}, ~std::uint64_t{0}}) {
    region r(64);
    shm_ring_reader reader(r.bytes());
    r.header().head.store(head);
    std::vector<std::byte> into(64);
    const auto got = reader.read(into);
    EXPECT_TRUE(got.broken) << head;
    EXPECT_EQ(got.bytes, 0u);
    EXPECT_FALSE(reader.wait_for_bytes()) << "a broken ring is reported, never slept on";
  }
}

TEST(shm_ring, AHeadThatMovesBackBreaksTheRing) {
  region r(64);
  shm_ring_writer writer(r.bytes());
  shm_ring_reader reader(r.bytes());
  writer.write(stream_bytes(0, 40));
  std::vector<std::byte> into(40);
  ASSERT_EQ(reader.read(into).bytes, 40u);
  r.header().head.store(10);
  EXPECT_TRUE(reader.read(into).broken);
}

TEST(shm_ring, AReaderIndexOutOfRangeBreaksTheRingForTheWriter) {
  for (const std::uint64_t tail : {std::uint64_t{1}, std::uint64_t{1000}}) {
    region r(64);
    shm_ring_writer writer(r.bytes());
    r.header().tail.store(tail);  // past a head of 0
    const auto w = writer.write(stream_bytes(0, 8));
    EXPECT_TRUE(w.broken) << tail;
    EXPECT_EQ(w.bytes, 0u);
    EXPECT_FALSE(writer.wait_for_room()) << "a broken ring is reported, never slept on";
  }
}

TEST(shm_ring, AnEmptyReaderWaitsAndTheNextWriteSaysToWakeItOnce) {
  region r(64);
  shm_ring_writer writer(r.bytes());
  shm_ring_reader reader(r.bytes());
  EXPECT_TRUE(reader.wait_for_bytes());
  EXPECT_FALSE(reader.take_writer_waiting());
  writer.write(stream_bytes(0, 1));
  EXPECT_TRUE(writer.take_reader_waiting());
  EXPECT_FALSE(writer.take_reader_waiting());
}

TEST(shm_ring, AReaderThatFindsBytesAfterAnnouncingGoesOnWithoutBeingWoken) {
  region r(64);
  shm_ring_writer writer(r.bytes());
  shm_ring_reader reader(r.bytes());
  writer.write(stream_bytes(0, 1));
  EXPECT_FALSE(reader.wait_for_bytes());
  EXPECT_FALSE(writer.take_reader_waiting());
}

TEST(shm_ring, AFullWriterWaitsAndTheNextReadSaysToWakeIt) {
  region r(64);
  shm_ring_writer writer(r.bytes());
  shm_ring_reader reader(r.bytes());
  writer.write(stream_bytes(0, 64));
  EXPECT_TRUE(writer.wait_for_room());
  std::vector<std::byte> into(1);
  reader.read(into);
  EXPECT_TRUE(reader.take_writer_waiting());
  EXPECT_FALSE(reader.take_writer_waiting());
  EXPECT_FALSE(writer.wait_for_room());
}

TEST(shm_ring, ARegionThatIsNotARingIsRefused) {
  region r(64);
  EXPECT_THROW(shm_ring_writer(r.bytes().first(shm_ring_region_size(32))), std::invalid_argument);
  EXPECT_THROW(shm_ring_writer(r.bytes().first(shm_ring_region_size(48))), std::invalid_argument);
  EXPECT_THROW(shm_ring_reader(r.bytes().first(10)), std::invalid_argument);
  region big(128);
  EXPECT_THROW(shm_ring_reader(big.bytes().subspan(8, shm_ring_region_size(64))),
               std::invalid_argument);
}

// Two threads, each sleeping on a doorbell (a pipe) when it has nothing to do, as the two
// processes will: a wake-up lost between a look and a sleep shows as a doorbell that never rings.
class doorbell {
 public:
  doorbell() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK) != 0) throw std::runtime_error("pipe");
    read_ = fds[0];
    write_ = fds[1];
  }
  ~doorbell() {
    ::close(read_);
    ::close(write_);
  }
  void ring() { [[maybe_unused]] auto n = ::write(write_, "x", 1); }
  // False when nobody rang within the time limit.
  bool wait() {
    pollfd p{read_, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return false;
    char drain[64];
    while (::read(read_, drain, sizeof drain) > 0) {
    }
    return true;
  }

 private:
  int read_ = -1;
  int write_ = -1;
};

TEST(shm_ring, TwoThreadsSleepingOnDoorbellsMoveEveryByteInOrderAndNeverHang) {
  constexpr std::uint64_t total = 8u << 20;
  region r(1024);
  doorbell data_arrived;
  doorbell room_made;
  bool writer_hung = false;
  std::thread writer_thread([&] {
    shm_ring_writer writer(r.bytes());
    std::mt19937 rng(5);
    for (std::uint64_t sent = 0; sent < total && !writer_hung;) {
      const auto chunk = stream_bytes(sent, std::min<std::uint64_t>(1 + rng() % 700, total - sent));
      const auto w = writer.write(chunk);
      ASSERT_FALSE(w.broken);
      sent += w.bytes;
      if (w.bytes > 0 && writer.take_reader_waiting()) data_arrived.ring();
      if (w.bytes == 0 && writer.wait_for_room() && !room_made.wait()) writer_hung = true;
    }
  });
  shm_ring_reader reader(r.bytes());
  std::mt19937 rng(7);
  std::uint64_t got = 0;
  bool reader_hung = false;
  std::vector<std::byte> into(700);
  while (got < total && !reader_hung) {
    const auto n = reader.read(std::span(into).first(1 + rng() % 700));
    ASSERT_FALSE(n.broken);
    for (std::size_t i = 0; i < n.bytes; ++i) ASSERT_EQ(into[i], nth(got + i)) << got + i;
    got += n.bytes;
    if (n.bytes > 0 && reader.take_writer_waiting()) room_made.ring();
    if (n.bytes == 0 && reader.wait_for_bytes() && !data_arrived.wait()) reader_hung = true;
  }
  if (reader_hung) room_made.ring();  // let a waiting writer see its own flag and end
  writer_thread.join();
  EXPECT_FALSE(writer_hung);
  EXPECT_FALSE(reader_hung);
  EXPECT_EQ(got, total);
}

}  // namespace
}  // namespace galaxies::transport
