// A worker's channel to its master over shared memory: two byte rings (transport/shm_ring.hpp),
// one each way, in one memory file, and two doorbells, one eventfd per side: a side that sleeps
// waits on its own, and the other side rings it (adds 1) only when that side's ring flag says it
// sleeps. The master creates all three and hands them to the worker at spawn. The channel's Unix
// socket stays, carrying no bytes: its end is the end of the connection, as before.
// Why eventfds: reading one resets it to 0, so a read that took a doorbell has drained it and the
// next wait needs no failing read first (a socket cannot tell that: its end may be queued behind
// the bytes read); ring hops cost 3 syscalls instead of 4 (bench/RESULTS.md).
// Threading: one side of one channel, used on its stream's executor only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "base/unique_fd.hpp"
#include "transport/shm_ring.hpp"

namespace galaxies::transport {

// One side's descriptors of a channel: what the master hands a worker, what a worker opens.
// Each close-on-exec, owned here.
struct shm_channel_fds {
  base::unique_fd memory;         // the rings' memory file (a sealed memfd)
  base::unique_fd doorbell;       // the side's own eventfd: it waits on it, the other side rings it
  base::unique_fd peer_doorbell;  // the other side's eventfd: this side rings it
};

class shm_channel {
 public:
  static constexpr std::size_t default_capacity = std::size_t{1} << 20;

  // Creates the memory for two rings of `capacity` bytes (a power of two) and both doorbells
  // (non-blocking eventfds); the creator writes the first ring and reads the second. Returns the
  // channel and, in `theirs`, the other side's descriptors to hand over. Throws std::system_error.
  static std::unique_ptr<shm_channel> create(std::size_t capacity, shm_channel_fds& theirs);
  // Opens a channel another process created, from the descriptors it handed over: the second
  // ring is ours to write; the memory file may be closed once this returns, the doorbells are
  // kept. They come from another process: refused with std::invalid_argument saying which and
  // why, a memory file that does not hold two rings and a doorbell that is not a non-blocking,
  // counting eventfd (a blocking one would stop this process in a read or a ring; a semaphore
  // would not reset when read). Throws std::system_error when the mapping fails.
  static std::unique_ptr<shm_channel> open(shm_channel_fds ours);

  shm_channel(const shm_channel&) = delete;
  shm_channel& operator=(const shm_channel&) = delete;
  ~shm_channel();

  // The eventfd this side waits on, for its stream to own and read (once).
  base::unique_fd take_doorbell() noexcept { return std::move(doorbell_); }
  // Tells the other side to look at the rings. A count that cannot grow (the other side let
  // 2^64 - 2 rings pile up unread) has told it enough.
  void ring_peer() noexcept;

  shm_ring_writer out;
  shm_ring_reader in;
  bool peer_closed = false;  // the socket reached its end: what the rings still hold is the last
  bool peer_spoke = false;   // bytes came on the socket, which carries only the end: broken
  std::uint64_t rung = 0;    // where the doorbell's count is read to, and dropped
  std::array<std::byte, 1> socket_byte{};  // where the socket's read would put a byte

 private:
  shm_channel(std::span<std::byte> mapping, bool creator, base::unique_fd doorbell,
              base::unique_fd peer_doorbell);

  std::span<std::byte> mapping_;
  base::unique_fd doorbell_;
  base::unique_fd peer_doorbell_;
};

}  // namespace galaxies::transport
