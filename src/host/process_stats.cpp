#include "host/process_stats.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "host/log_setup.hpp"
#include "process/proc_stat.hpp"

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

  if (const auto stat = process::read_proc_stat(::getpid())) {
    const double ticks = process::clock_ticks_per_second();
    j["cpu_seconds"] = static_cast<double>(stat->user_ticks + stat->system_ticks) / ticks;
    if (const auto boot = boot_time(); boot >= 0)
      j["start_time_seconds"] =
          static_cast<double>(boot) + static_cast<double>(stat->started_ticks) / ticks;
  }
  j["log_lines_dropped"] = log_lines_dropped();
  return j;
}

}  // namespace galaxies::host
