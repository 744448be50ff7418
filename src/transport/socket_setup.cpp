#include "transport/socket_setup.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace galaxies::transport {

void set_cloexec(int fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

void tune_host_link(int fd) {
  const int on = 1;
  // Best effort: both are optimisations of timing, and a kernel without them still works.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, &on, sizeof on);
  // The kernel keeps at most this much unsent data: the rest waits in the link's queue, where a
  // credit or a master's answer can still go ahead of it (the link's control lane).
  const int lowat = static_cast<int>(host_link_notsent_lowat);
  ::setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
}

std::optional<std::chrono::microseconds> tcp_round_trip(int fd) noexcept {
  tcp_info info{};
  socklen_t size = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return std::nullopt;
  return std::chrono::microseconds(info.tcpi_rtt);
}

}  // namespace galaxies::transport
