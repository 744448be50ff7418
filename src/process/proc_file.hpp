// Reading a small /proc file whole, without allocating (the CPU-wait meter reads them on a
// loop's deadlines).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <optional>
#include <string_view>

namespace galaxies::process {

// At most `size` - 1 bytes of the file at `path`, in one read (the kernel writes these files
// whole); nullopt when it cannot be read or is longer.
template <std::size_t size>
std::optional<std::string_view> read_proc_file(const char* path,
                                               std::array<char, size>& text) noexcept {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  ssize_t n;
  do n = ::read(fd, text.data(), text.size());
  while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0 || static_cast<std::size_t>(n) == text.size()) return std::nullopt;
  return std::string_view(text.data(), static_cast<std::size_t>(n));
}

}  // namespace galaxies::process
