#include "transport/socket_setup.hpp"

#include <fcntl.h>

namespace galaxies::transport {

void set_cloexec(int fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

}  // namespace galaxies::transport
