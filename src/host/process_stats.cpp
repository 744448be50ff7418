#include "host/process_stats.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace galaxies::host {
namespace {

// Seconds since the epoch at which the machine booted (/proc/stat's btime).
long long boot_time() {
  std::ifstream in("/proc/stat");
  std::string key;
  long long value = 0;
  while (in >> key) {
    if (key == "btime" && in >> value) return value;
    in.ignore(1 << 20, '\n');
  }
  return -1;
}

}  // namespace

nlohmann::json process_stats() {
  nlohmann::json j = nlohmann::json::object();
  const long page = ::sysconf(_SC_PAGESIZE);
  const long ticks = ::sysconf(_SC_CLK_TCK);

  std::ifstream statm("/proc/self/statm");
  unsigned long long size = 0;
  unsigned long long resident = 0;
  if (statm >> size >> resident) j["rss_bytes"] = resident * static_cast<unsigned long long>(page);

  if (DIR* dir = ::opendir("/proc/self/fd")) {
    std::uint64_t n = 0;
    while (const dirent* e = ::readdir(dir))
      if (e->d_name[0] != '.') ++n;
    ::closedir(dir);
    j["open_fds"] = n - 1;  // the directory's own descriptor
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    j["max_fds"] = static_cast<std::uint64_t>(limit.rlim_cur);

  // /proc/self/stat: the command name (field 2) may hold spaces and parentheses; the fields
  // after its last ')' are plain numbers. utime and stime are fields 14 and 15, starttime 22.
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line) && ticks > 0) {
    const auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 1));
      std::string field;
      unsigned long long utime = 0, stime = 0, start = 0;
      for (int index = 3; rest >> field; ++index) {
        if (index == 14) utime = std::stoull(field);
        if (index == 15) stime = std::stoull(field);
        if (index == 22) {
          start = std::stoull(field);
          break;
        }
      }
      j["cpu_seconds"] = static_cast<double>(utime + stime) / static_cast<double>(ticks);
      if (const auto boot = boot_time(); boot >= 0)
        j["start_time_seconds"] =
            static_cast<double>(boot) + static_cast<double>(start) / static_cast<double>(ticks);
    }
  }
  return j;
}

}  // namespace galaxies::host
