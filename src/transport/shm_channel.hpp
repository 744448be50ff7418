// A worker's channel to its master over shared memory: two byte rings (transport/shm_ring.hpp),
// one each way, in one memory file, and two doorbells, one pipe per side: a side that sleeps
// waits on the read end of its own, and the other side rings it (writes a byte to its write end)
// only when that side's ring flag says it sleeps. The master creates all three and hands the
// worker the memory file, the read end of the worker's pipe and the write end of its own. The
// channel's Unix socket stays, carrying no bytes: its end is the end of the connection, as before.
// Why pipes: each end is held by one process only, so its file status (O_NONBLOCK) is its own; an
// eventfd handed over shares one open file with the worker, which could make the master's ring a
// write that waits for good. Why not the socket: a read that took every byte of a pipe has
// drained it, so the next wait needs no failing read first (a socket cannot tell that: its end
// may be queued behind the bytes read); ring hops cost 3 syscalls instead of 4 (bench/RESULTS.md).
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
  base::unique_fd doorbell;       // the read end of the side's own pipe: it waits on it
  base::unique_fd peer_doorbell;  // the write end of the other side's pipe: this side rings it
};

// What shm_channel::open's refusals call the doorbells (a worker: the variables that named them).
struct shm_doorbell_names {
  const char* doorbell = "the doorbell";
  const char* peer_doorbell = "the other side's doorbell";
};

class shm_channel {
 public:
  static constexpr std::size_t default_capacity = std::size_t{1} << 20;

  // Creates the memory for two rings of `capacity` bytes (a power of two) and both doorbells
  // (pipes, every end non-blocking); the creator writes the first ring and reads the second.
  // Returns the channel and, in `theirs`, the other side's descriptors to hand over (the caller
  // closes them once handed). Throws std::system_error.
  static std::unique_ptr<shm_channel> create(std::size_t capacity, shm_channel_fds& theirs);
  // Opens a channel another process created, from the descriptors it handed over: the second
  // ring is ours to write; the memory file may be closed once this returns, the doorbells are
  // kept, made non-blocking here (their file status is ours alone). They come from another
  // process: refused with std::invalid_argument saying which and why, a memory file that does
  // not hold two rings, a doorbell that is not a pipe's read end, a peer doorbell that is not a
  // pipe's write end, and one pipe for both. Throws std::system_error when the mapping fails.
  static std::unique_ptr<shm_channel> open(shm_channel_fds ours, shm_doorbell_names names = {});

  shm_channel(const shm_channel&) = delete;
  shm_channel& operator=(const shm_channel&) = delete;
  ~shm_channel();

  // The pipe end this side waits on, for its stream to own and read (once).
  base::unique_fd take_doorbell() noexcept { return std::move(doorbell_); }
  // Tells the other side to look at the rings: one byte, never waiting. A full pipe (64 KiB of
  // rings the other side left unread) has told it enough; a pipe nobody reads any more (the
  // other side is gone; its socket's end says so) raises SIGPIPE, which create and open make
  // sure cannot kill this process (host/run.cpp ignores it too).
  void ring_peer() noexcept;

  shm_ring_writer out;
  shm_ring_reader in;
  bool peer_closed = false;  // the socket or the doorbell reached its end: the rings hold the last
  bool peer_spoke = false;   // bytes came on the socket, which carries only the end: broken
  std::array<std::byte, 256> rung{};       // where the doorbell's bytes are read to, and dropped
  std::array<std::byte, 1> socket_byte{};  // where the socket's read would put a byte

 private:
  shm_channel(std::span<std::byte> mapping, bool creator, base::unique_fd doorbell,
              base::unique_fd peer_doorbell);

  std::span<std::byte> mapping_;
  base::unique_fd doorbell_;
  base::unique_fd peer_doorbell_;
};

}  // namespace galaxies::transport
