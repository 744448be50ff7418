// A raw client socket for tests that play a peer byte by byte (bad input, a fake host): plain
// blocking calls with poll-bounded reads, so that the fake peer does not depend on the library it
// is testing.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "wire/frame.hpp"

namespace galaxies::test {

using frame_bytes = std::vector<std::byte>;

struct read_outcome {
  bool closed = false;  // EOF or reset
  int error = 0;        // errno of the reset, 0 for a clean EOF
  frame_bytes data;     // everything the master sent before closing
  std::chrono::milliseconds after{0};
};

// A plain blocking socket with poll-bounded reads: the fake client must not depend on the library
// it is testing.
class raw_connection {
 public:
  static raw_connection tcp(std::uint16_t port) {
    raw_connection c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(c.fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) c.reset();
    return c;
  }

  static raw_connection unix_socket(const std::string& path) {
    raw_connection c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
      c.reset();
      return c;
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (::connect(c.fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) c.reset();
    return c;
  }

  raw_connection(raw_connection&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  raw_connection& operator=(raw_connection&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~raw_connection() { reset(); }

  bool connected() const { return fd_ >= 0; }

  // False once the master has closed its end (EPIPE, ECONNRESET): a master may well close before
  // it has read everything we meant to send.
  bool write(std::span<const std::byte> data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data = data.subspan(static_cast<std::size_t>(n));
    }
    return true;
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  void close() { reset(); }

  // Reads until the master closes the connection or `deadline` passes.
  read_outcome read_until_closed(std::chrono::milliseconds deadline) {
    return read_until(deadline, [](const frame_bytes&) { return false; });
  }

  // Reads until `enough` holds for everything read so far, the master closes the connection, or
  // `deadline` passes.
  template <class Predicate>
  read_outcome read_until(std::chrono::milliseconds deadline, Predicate enough) {
    using steady = std::chrono::steady_clock;
    read_outcome out;
    const auto start = steady::now();
    const auto until = start + deadline;
    std::byte chunk[4096];
    while (!enough(out.data)) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) break;
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) {
        out.data.insert(out.data.end(), chunk, chunk + n);
        continue;
      }
      out.closed = true;
      out.error = n < 0 ? errno : 0;
      break;
    }
    out.after = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
    return out;
  }

 private:
  explicit raw_connection(int fd) : fd_(fd) {}
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  int fd_ = -1;
};

// The frames in what the master sent; stops at the first undecodable byte.
inline std::vector<wire::frame_view> frames_in(const frame_bytes& data) {
  std::vector<wire::frame_view> out;
  const wire::frame_parser parser;
  std::span<const std::byte> rest(data);
  while (true) {
    const auto r = parser.parse(rest);
    if (r.state != wire::parse_result::status::frame) break;
    out.push_back(r.frame);
    rest = rest.subspan(r.frame.header.total());
  }
  return out;
}

}  // namespace galaxies::test
