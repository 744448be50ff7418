// Blocking POSIX stream I/O for the baselines (tcp, relay): an owned fd, whole writes, and a
// reader of length-prefixed messages that parses every complete message of one read, as the
// galaxies links do.
#pragma once

#include <sys/un.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace galaxies::bench {

inline constexpr std::size_t prefix_size = 4;
inline constexpr std::size_t read_size = 64 * 1024;

[[noreturn]] void fail_errno(const std::string& what);

class fd_guard {
 public:
  explicit fd_guard(int fd = -1) : fd_(fd) {}
  fd_guard(fd_guard&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  fd_guard& operator=(fd_guard&& other) noexcept;
  ~fd_guard();
  int get() const { return fd_; }

 private:
  int fd_;
};

// A blocked read or write gives up after `limit` (then it throws): a peer that died or hangs
// cannot hold the benchmark past its time limit.
void set_io_timeout(int fd, std::chrono::milliseconds limit);

void write_all(int fd, const char* data, std::size_t size);
inline void write_all(int fd, const std::vector<char>& data) {
  write_all(fd, data.data(), data.size());
}

// The address of the Unix socket at `path` (throws if the path is too long for one); a socket
// of `type` (SOCK_STREAM, SOCK_DGRAM) bound there; a listening one; a connection to one (retried
// while the listener is not there yet, until `patience` has passed). All close-on-exec.
sockaddr_un unix_address(const std::string& path);
fd_guard bind_unix(const std::string& path, int type);
fd_guard listen_unix(const std::string& path);
fd_guard connect_unix(const std::string& path, std::chrono::milliseconds patience);

// A TCP listener on 127.0.0.1 with a port the kernel chose (stored in `port`), holding up to
// `backlog` connections not yet accepted; a connection to 127.0.0.1:port; the next accepted
// connection. All close-on-exec.
fd_guard listen_loopback(int& port, int backlog = 16);
fd_guard connect_loopback(int port);
fd_guard accept_one(int listener);

// Sets TCP_NODELAY: every benchmark stream writes in batches of its own.
void set_nodelay(int fd);

void append_message(std::vector<char>& out, const std::vector<char>& payload);

// Accumulates a byte stream and hands out complete length-prefixed messages.
class message_reader {
 public:
  message_reader() : buffer_(read_size * 2) {}

  // One read(2); false at EOF.
  bool read_from(int fd);

  // Calls fn(payload pointer, size) for each complete message buffered.
  template <class Fn>
  void for_each_message(Fn&& fn) {
    while (end_ - begin_ >= prefix_size) {
      const std::uint32_t size = peek_size();
      if (end_ - begin_ < prefix_size + size) return;
      fn(buffer_.data() + begin_ + prefix_size, std::size_t{size});
      begin_ += prefix_size + size;
    }
  }

 private:
  std::uint32_t peek_size() const;

  std::vector<char> buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace galaxies::bench
