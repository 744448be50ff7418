#include "transport/local_peer.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/text.hpp"

namespace galaxies::transport {
namespace {

// The peer's program name from /proc, for the log line only; "?" when it is gone already.
std::string program_name(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/comm";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "?";
  char name[64] = {};
  const ssize_t n = ::read(fd, name, sizeof name - 1);
  ::close(fd);
  if (n <= 0) return "?";
  std::string_view text(name, static_cast<std::size_t>(n));
  if (text.ends_with('\n')) text.remove_suffix(1);
  return base::printable(text);
}

// What the kernel recorded of the peer at connect() (or socketpair()); why not, when it cannot.
std::optional<std::string> read_credentials(int fd, ucred& peer) {
  socklen_t length = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0)
    return std::string("its credentials cannot be read: ") + std::strerror(errno);
  if (length != sizeof peer) return std::string("its credentials are incomplete");
  return std::nullopt;
}

}  // namespace

std::optional<std::string> refuse_local_peer(int fd, uid_t self) {
  ucred peer{};
  if (auto why = read_credentials(fd, peer)) return why;
  if (peer.uid == self || peer.uid == 0) return std::nullopt;
  return "peer pid " + std::to_string(peer.pid) + " ('" + program_name(peer.pid) +
         "') runs as uid " + std::to_string(peer.uid) + "; only uid " + std::to_string(self) +
         " and root may connect";
}

pid_t local_peer_pid(int fd) {
  ucred peer{};
  return read_credentials(fd, peer) ? 0 : peer.pid;
}

}  // namespace galaxies::transport
