#include "stream_io.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace galaxies::bench {

void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

fd_guard& fd_guard::operator=(fd_guard&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

fd_guard::~fd_guard() {
  if (fd_ >= 0) ::close(fd_);
}

void set_io_timeout(int fd, std::chrono::milliseconds limit) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(limit.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((limit.count() % 1000) * 1000);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
    fail_errno("setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)");
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw std::runtime_error("Unix socket path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

fd_guard bind_unix(const std::string& path, int type) {
  const sockaddr_un addr = unix_address(path);
  fd_guard fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) fail_errno("socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    fail_errno("bind " + path);
  return fd;
}

fd_guard listen_unix(const std::string& path) {
  fd_guard fd = bind_unix(path, SOCK_STREAM);
  if (::listen(fd.get(), 16) != 0) fail_errno("listen");
  return fd;
}

fd_guard connect_unix(const std::string& path, std::chrono::milliseconds patience) {
  const sockaddr_un addr = unix_address(path);
  const auto give_up = std::chrono::steady_clock::now() + patience;
  for (;;) {
    fd_guard fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) fail_errno("socket");
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return fd;
    const bool not_yet = errno == ENOENT || errno == ECONNREFUSED;
    if (!not_yet || std::chrono::steady_clock::now() > give_up) fail_errno("connect " + path);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

namespace {

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  return addr;
}

fd_guard tcp_socket() {
  fd_guard fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) fail_errno("socket");
  return fd;
}

}  // namespace

fd_guard listen_loopback(int& port, int backlog) {
  fd_guard listener = tcp_socket();
  auto addr = loopback(0);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    fail_errno("bind");
  if (::listen(listener.get(), backlog) != 0) fail_errno("listen");
  socklen_t len = sizeof addr;
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    fail_errno("getsockname");
  port = ntohs(addr.sin_port);
  return listener;
}

fd_guard connect_loopback(int port) {
  fd_guard fd = tcp_socket();
  auto addr = loopback(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    fail_errno("connect to 127.0.0.1:" + std::to_string(port));
  return fd;
}

fd_guard accept_one(int listener) {
  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) return fd_guard(fd);
    if (errno != EINTR && errno != ECONNABORTED) fail_errno("accept");
  }
}

void set_nodelay(int fd) {
  const int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) fail_errno("TCP_NODELAY");
}

void write_all(int fd, const char* data, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::send(fd, data + done, size - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("send");
    done += static_cast<std::size_t>(n);
  }
}

void append_message(std::vector<char>& out, const std::vector<char>& payload) {
  const std::uint32_t size = htonl(static_cast<std::uint32_t>(payload.size()));
  const std::size_t at = out.size();
  out.resize(at + prefix_size + payload.size());
  std::memcpy(out.data() + at, &size, prefix_size);
  std::memcpy(out.data() + at + prefix_size, payload.data(), payload.size());
}

bool message_reader::read_from(int fd) {
  if (begin_ > 0 && buffer_.size() - end_ < read_size) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buffer_.size() - end_ < read_size) buffer_.resize(end_ + read_size);
  for (;;) {
    const ssize_t n = ::read(fd, buffer_.data() + end_, buffer_.size() - end_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read");
    end_ += static_cast<std::size_t>(n);
    return n > 0;
  }
}

std::uint32_t message_reader::peek_size() const {
  std::uint32_t size = 0;
  std::memcpy(&size, buffer_.data() + begin_, prefix_size);
  return ntohl(size);
}

}  // namespace galaxies::bench
