#include "transport/shm_channel.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>
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

base::unique_fd new_doorbell() {
  base::unique_fd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!fd) fail("eventfd for a channel's doorbell");
  return fd;
}

base::unique_fd duplicate(const base::unique_fd& fd) {
  base::unique_fd copy(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!copy) fail("fcntl(F_DUPFD_CLOEXEC) of a channel's doorbell");
  return copy;
}

// The value of `key` ("key:\tvalue" lines) in the kernel's fdinfo text, or empty.
std::string_view fdinfo_value(std::string_view info, std::string_view key) {
  for (std::size_t at = 0; at < info.size();) {
    std::size_t end = info.find('\n', at);
    if (end == std::string_view::npos) end = info.size();
    std::string_view line = info.substr(at, end - at);
    if (line.starts_with(key) && line.size() > key.size() && line[key.size()] == ':') {
      line.remove_prefix(key.size() + 1);
      const std::size_t first = line.find_first_not_of(" \t");
      return first == std::string_view::npos ? std::string_view{} : line.substr(first);
    }
    at = end + 1;
  }
  return {};
}

// An eventfd has no type of its own in fstat (an anonymous inode); the kernel's fdinfo for it
// has an eventfd-count line, and says when it is a semaphore and which eventfd it is (kernels
// since 6.2). Returns that id (empty when the kernel does not say).
std::string check_doorbell(int fd, const char* which) {
  const std::string prefix = std::string("shm channel: ") + which + " (fd " + std::to_string(fd);
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw std::invalid_argument(prefix + ") is no open file descriptor");
  const std::string path = "/proc/self/fdinfo/" + std::to_string(fd);
  base::unique_fd info_file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  char text[1024];
  const ssize_t n = info_file ? ::read(info_file.get(), text, sizeof text) : -1;
  if (n < 0) throw std::invalid_argument(prefix + "): cannot read " + path);
  const std::string_view info(text, static_cast<std::size_t>(n));
  if (fdinfo_value(info, "eventfd-count").empty())
    throw std::invalid_argument(prefix + ") is not an eventfd");
  if (fdinfo_value(info, "eventfd-semaphore") == "1")
    throw std::invalid_argument(prefix + ") is a semaphore eventfd, which a read does not reset");
  if ((flags & O_NONBLOCK) == 0) throw std::invalid_argument(prefix + ") is not non-blocking");
  return std::string(fdinfo_value(info, "eventfd-id"));
}

}  // namespace

std::unique_ptr<shm_channel> shm_channel::create(std::size_t capacity, shm_channel_fds& theirs) {
  if (capacity < 64 || !std::has_single_bit(capacity))
    throw std::invalid_argument("shm channel: capacity not a power of two of at least 64");
  base::unique_fd memory(::memfd_create("galaxies-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!memory) fail("memfd_create");
  const std::size_t size = 2 * shm_ring_region_size(capacity);
  // Sealed at its size: the other process can write the rings, but a file it shrank would make
  // our next access to the mapping past its end a SIGBUS.
  if (::ftruncate(memory.get(), static_cast<off_t>(size)) != 0 ||
      ::fcntl(memory.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    fail("sizing and sealing a channel's rings");
  base::unique_fd mine = new_doorbell();
  base::unique_fd other = new_doorbell();
  shm_channel_fds handed{std::move(memory), duplicate(other), duplicate(mine)};
  auto channel = std::unique_ptr<shm_channel>(
      new shm_channel(map(handed.memory.get(), size), true, std::move(mine), std::move(other)));
  theirs = std::move(handed);
  return channel;
}

std::unique_ptr<shm_channel> shm_channel::open(shm_channel_fds ours) {
  struct stat st {};
  if (::fstat(ours.memory.get(), &st) != 0) fail("fstat of a channel's rings");
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size % 2 != 0 || size / 2 <= sizeof(shm_ring_header) ||
      !std::has_single_bit(size / 2 - sizeof(shm_ring_header)))
    throw std::invalid_argument("shm channel: the memory file does not hold two rings");
  const std::string own = check_doorbell(ours.doorbell.get(), "the doorbell");
  const std::string peer = check_doorbell(ours.peer_doorbell.get(), "the other side's doorbell");
  // One eventfd for both: each side would wake itself, and sleep through the other's doorbells.
  if (!own.empty() && own == peer)
    throw std::invalid_argument("shm channel: the doorbell and the other side's are one eventfd");
  return std::unique_ptr<shm_channel>(new shm_channel(map(ours.memory.get(), size), false,
                                                      std::move(ours.doorbell),
                                                      std::move(ours.peer_doorbell)));
}

// A fresh memory file reads as zeros, which is both rings' starting state.
shm_channel::shm_channel(std::span<std::byte> mapping, bool creator, base::unique_fd doorbell,
                         base::unique_fd peer_doorbell)
    : out(ring_region(mapping, !creator)),
      in(ring_region(mapping, creator)),
      mapping_(mapping),
      doorbell_(std::move(doorbell)),
      peer_doorbell_(std::move(peer_doorbell)) {}

shm_channel::~shm_channel() {
  ::munmap(mapping_.data(), mapping_.size());
}

void shm_channel::ring_peer() noexcept {
  ::eventfd_write(peer_doorbell_.get(), 1);
}

}  // namespace galaxies::transport
