#include "process/proc_tasks.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <string>
#include <string_view>

namespace galaxies::process {

std::vector<pid_t> threads_of(pid_t pid) {
  std::vector<pid_t> threads;
  const std::string directory = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) return threads;
  while (const dirent* entry = ::readdir(dir)) {
    pid_t tid = 0;
    const std::string_view name(entry->d_name);
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), tid);
    if (ec == std::errc() && end == name.data() + name.size() && tid > 0) threads.push_back(tid);
  }
  ::closedir(dir);
  return threads;
}

std::optional<std::set<pid_t>> children_of(pid_t pid) {
  const auto threads = threads_of(pid);
  if (threads.empty()) return std::nullopt;
  std::set<pid_t> children;
  for (pid_t tid : threads) {
    const std::string task = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid);
    const int fd = ::open((task + "/children").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT && ::access(task.c_str(), F_OK) != 0) continue;  // the thread ended
      return std::nullopt;
    }
    std::string text;
    std::array<char, 4096> chunk;
    ssize_t n;
    while ((n = ::read(fd, chunk.data(), chunk.size())) > 0 || (n < 0 && errno == EINTR))
      if (n > 0) text.append(chunk.data(), static_cast<std::size_t>(n));
    ::close(fd);
    const char* at = text.data();
    const char* const end = text.data() + text.size();
    while (at < end) {
      pid_t child = 0;
      const auto parsed = std::from_chars(at, end, child);
      if (parsed.ec == std::errc()) children.insert(child);
      at = parsed.ptr == at ? at + 1 : parsed.ptr;
    }
  }
  return children;
}

}  // namespace galaxies::process
