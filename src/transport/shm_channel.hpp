// A worker's channel to its master over shared memory: two byte rings (transport/shm_ring.hpp),
// one each way, in one memory file the master creates and hands to the worker at spawn. The
// channel's Unix socket stays: a byte on it is a doorbell ("look at the rings"), sent only to a
// side that said it sleeps, and its end is the end of the connection, as before.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <span>

#include "transport/shm_ring.hpp"

namespace galaxies::transport {

class shm_channel {
 public:
  static constexpr std::size_t default_capacity = std::size_t{1} << 20;

  // Creates the memory for two rings of `capacity` bytes (a power of two); the creator writes
  // the first ring and reads the second. Returns the channel and, in `fd`, the memory file's
  // descriptor (close-on-exec) to hand to the other side. Throws std::system_error.
  static std::unique_ptr<shm_channel> create(std::size_t capacity, int& fd);
  // Maps memory another process created: the second ring is ours to write. Checks the file's size
  // (two rings of a power of two); throws std::system_error or std::invalid_argument.
  static std::unique_ptr<shm_channel> open(int fd);

  shm_channel(const shm_channel&) = delete;
  shm_channel& operator=(const shm_channel&) = delete;
  ~shm_channel();

  shm_ring_writer out;
  shm_ring_reader in;
  bool peer_closed = false;  // the socket reached its end: what the rings still hold is the last
  std::array<std::byte, 256> doorbells{};  // where the socket's doorbells are read to, and dropped

 private:
  shm_channel(std::span<std::byte> mapping, bool creator);

  std::span<std::byte> mapping_;
};

}  // namespace galaxies::transport
