#include "process/self_executable.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>

namespace galaxies::process {

std::string executable_to_run(const std::string& path, int running_fd) {
  struct stat on_disk {};
  struct stat running {};
  if (path.empty() || path.front() != '/' || ::stat(path.c_str(), &on_disk) != 0 ||
      ::fstat(running_fd, &running) != 0 || !S_ISREG(on_disk.st_mode))
    return running_file;
  const bool same_file = on_disk.st_dev == running.st_dev && on_disk.st_ino == running.st_ino;
  return same_file ? path : running_file;
}

std::string self_executable() {
  char target[PATH_MAX];
  const ssize_t n = ::readlink(running_file, target, sizeof target - 1);
  if (n <= 0) return running_file;
  // Opened rather than stat()ed: under valgrind, only open and readlink of /proc/self/exe are
  // redirected to the program valgrind runs, so this compares the same file in both cases.
  const int fd = ::open(running_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return running_file;
  std::string chosen = executable_to_run(std::string(target, static_cast<std::size_t>(n)), fd);
  ::close(fd);
  return chosen;
}

}  // namespace galaxies::process
