#include "transport/shm_channel.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <stdexcept>
#include <string>
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

struct pipe_ends {
  base::unique_fd read;
  base::unique_fd write;
};

pipe_ends new_doorbell() {
  int ends[2];
  if (::pipe2(ends, O_NONBLOCK | O_CLOEXEC) != 0) fail("pipe2 for a channel's doorbell");
  return {base::unique_fd(ends[0]), base::unique_fd(ends[1])};
}

// A ring to a pipe whose reader is gone raises SIGPIPE, and its default action would kill this
// process for its peer's exit. A disposition the application chose (a handler, ignored) stays.
void keep_sigpipe_from_killing() {
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) != 0) fail("sigaction(SIGPIPE)");
  if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) return;
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  if (::sigaction(SIGPIPE, &ignore, nullptr) != 0) fail("sigaction(SIGPIPE, SIG_IGN)");
}

// A doorbell another process handed over: an end of a pipe, opened for `access` (O_RDONLY: the
// one this side waits on; O_WRONLY: the one it rings), made non-blocking (its file status is this
// process's alone). Returns what identifies its pipe.
struct stat check_doorbell(int fd, const char* which, int access) {
  const std::string prefix = std::string("shm channel: ") + which + " (fd " + std::to_string(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw std::invalid_argument(prefix + ") is no open file descriptor");
  if (!S_ISFIFO(st.st_mode)) throw std::invalid_argument(prefix + ") is not a pipe");
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) fail("fcntl(F_GETFL) of a channel's doorbell");
  if ((flags & O_ACCMODE) != access)
    throw std::invalid_argument(prefix + (access == O_RDONLY ? ") is not a pipe's read end"
                                                             : ") is not a pipe's write end"));
  if ((flags & O_NONBLOCK) == 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    fail("fcntl(F_SETFL, O_NONBLOCK) of a channel's doorbell");
  return st;
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
  keep_sigpipe_from_killing();
  pipe_ends mine = new_doorbell();
  pipe_ends other = new_doorbell();
  shm_channel_fds handed{std::move(memory), std::move(other.read), std::move(mine.write)};
  auto channel = std::unique_ptr<shm_channel>(new shm_channel(
      map(handed.memory.get(), size), true, std::move(mine.read), std::move(other.write)));
  theirs = std::move(handed);
  return channel;
}

std::unique_ptr<shm_channel> shm_channel::open(shm_channel_fds ours, shm_doorbell_names names) {
  struct stat st {};
  if (::fstat(ours.memory.get(), &st) != 0) fail("fstat of a channel's rings");
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size % 2 != 0 || size / 2 <= sizeof(shm_ring_header) ||
      !std::has_single_bit(size / 2 - sizeof(shm_ring_header)))
    throw std::invalid_argument("shm channel: the memory file does not hold two rings");
  const struct stat own = check_doorbell(ours.doorbell.get(), names.doorbell, O_RDONLY);
  const struct stat peer = check_doorbell(ours.peer_doorbell.get(), names.peer_doorbell, O_WRONLY);
  // One pipe for both: this side would wake itself, and sleep through the other side's doorbells.
  if (own.st_dev == peer.st_dev && own.st_ino == peer.st_ino)
    throw std::invalid_argument(std::string("shm channel: ") + names.doorbell + " and " +
                                names.peer_doorbell + " are ends of one pipe");
  keep_sigpipe_from_killing();
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
  const std::byte bell{1};
  // Full (EAGAIN) or unread for good (EPIPE): either way, nothing more to tell (shm_channel.hpp).
  [[maybe_unused]] const ssize_t n = ::write(peer_doorbell_.get(), &bell, 1);
}

}  // namespace galaxies::transport
