// A byte ring in memory shared by two processes: one writes, the other reads (a worker's channel
// to its master, one ring each way; bench/RESULTS.md measures a Unix socket hop at 6-9 times the
// CPU of a ring copy). Each side copies: the writer into the ring, the reader out of it, so the
// reader parses bytes the writer can no longer change under it.
//
// The other process is not trusted. Whatever it could do to the shared memory (scribble on the
// data, move its index anywhere, stop halfway) costs the reader garbage bytes, which the frame
// parser rejects, or a `broken` ring, never a read outside the region or a wait for good: every
// index read from the other side is checked before it is used.
//
// Sleeping: a side that finds nothing to do announces that it waits, looks once more (so that a
// wake-up cannot be lost between its look and its sleep), and sleeps on a doorbell of the
// caller's (a byte on a pipe). The other side rings it only when the flag says so.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace galaxies::transport {

struct shm_ring_header {
  alignas(64) std::atomic<std::uint64_t> head;  // bytes ever written; only the writer stores it
  std::atomic<std::uint32_t> writer_waiting;    // the writer waits for room; the reader clears it
  alignas(64) std::atomic<std::uint64_t> tail;  // bytes ever read; only the reader stores it
  std::atomic<std::uint32_t> reader_waiting;    // the reader waits for bytes; the writer clears it
};

// The region a ring of `capacity` bytes (a power of two) takes: the header, then the bytes.
constexpr std::size_t shm_ring_region_size(std::size_t capacity) {
  return sizeof(shm_ring_header) + capacity;
}

// What one call did: bytes copied, and whether the peer broke the ring (an index out of range).
struct shm_ring_result {
  std::size_t bytes = 0;
  bool broken = false;
};

class shm_ring_side {
 public:
  // `region`: shm_ring_region_size(capacity) bytes, suitably aligned, zeroed by whoever created
  // it before either side uses it; `capacity` a power of two of at least 64.
  explicit shm_ring_side(std::span<std::byte> region);

  std::size_t capacity() const noexcept { return capacity_; }

 protected:
  shm_ring_header& header() const noexcept { return *header_; }
  std::byte* data() const noexcept { return data_; }

 private:
  shm_ring_header* header_;
  std::byte* data_;
  std::size_t capacity_;
};

class shm_ring_writer : public shm_ring_side {
 public:
  using shm_ring_side::shm_ring_side;

  // Copies as much of `bytes` as fits now.
  shm_ring_result write(std::span<const std::byte> bytes) noexcept;
  // After a write that copied something: whether the reader sleeps and must be woken. Clears
  // the reader's flag, so one write's doorbell serves.
  bool take_reader_waiting() noexcept;
  // With nothing written for want of room: announces the wait and looks once more. True: still
  // full, sleep until the doorbell; false: room appeared (or the ring broke), write again.
  bool wait_for_room() noexcept;

 private:
  std::uint64_t head_ = 0;  // our own index: never read back from the shared memory
};

class shm_ring_reader : public shm_ring_side {
 public:
  using shm_ring_side::shm_ring_side;

  // Copies up to into.size() bytes that have arrived.
  shm_ring_result read(std::span<std::byte> into) noexcept;
  // Bytes that have arrived and wait to be read (0 when the ring is broken).
  std::size_t available() const noexcept;
  // After a read that took something: whether the writer sleeps for room and must be woken.
  bool take_writer_waiting() noexcept;
  // With nothing to read: announces the wait and looks once more. True: still empty, sleep until
  // the doorbell; false: bytes arrived (or the ring broke), read again.
  bool wait_for_bytes() noexcept;

 private:
  std::uint64_t tail_ = 0;
};

}  // namespace galaxies::transport
