#include "transport/shm_channel.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace galaxies::transport {
namespace {

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::span<std::byte> map(int fd, std::size_t size) {
  void* at = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (at == MAP_FAILED) fail("mmap of a channel's rings");
  return {static_cast<std::byte*>(at), size};
}

std::span<std::byte> ring_region(std::span<std::byte> mapping, bool second) {
  const std::size_t half = mapping.size() / 2;
  return mapping.subspan(second ? half : 0, half);
}

}  // namespace

std::unique_ptr<shm_channel> shm_channel::create(std::size_t capacity, int& fd) {
  if (capacity < 64 || !std::has_single_bit(capacity))
    throw std::invalid_argument("shm channel: capacity not a power of two of at least 64");
  fd = ::memfd_create("galaxies-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) fail("memfd_create");
  const std::size_t size = 2 * shm_ring_region_size(capacity);
  // Sealed at its size: the other process can write the rings, but a file it shrank would make
  // our next access to the mapping past its end a SIGBUS.
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    fail("sizing and sealing a channel's rings");
  }
  try {
    return std::unique_ptr<shm_channel>(new shm_channel(map(fd, size), true));
  } catch (...) {
    ::close(fd);
    throw;
  }
}

std::unique_ptr<shm_channel> shm_channel::open(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("fstat of a channel's rings");
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size % 2 != 0 || size / 2 <= sizeof(shm_ring_header) ||
      !std::has_single_bit(size / 2 - sizeof(shm_ring_header)))
    throw std::invalid_argument("shm channel: the memory file does not hold two rings");
  return std::unique_ptr<shm_channel>(new shm_channel(map(fd, size), false));
}

// A fresh memory file reads as zeros, which is both rings' starting state.
shm_channel::shm_channel(std::span<std::byte> mapping, bool creator)
    : out(ring_region(mapping, !creator)), in(ring_region(mapping, creator)), mapping_(mapping) {}

shm_channel::~shm_channel() {
  ::munmap(mapping_.data(), mapping_.size());
}

}  // namespace galaxies::transport
