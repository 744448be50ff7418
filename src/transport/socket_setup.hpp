// Socket set-up every connection needs. Asio opens sockets without close-on-exec, and the master
// fork+execs workers: without this, every worker would inherit every link of its master.
#pragma once

#include <system_error>

namespace galaxies::transport {

void set_cloexec(int fd);

}  // namespace galaxies::transport
