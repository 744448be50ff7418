// What a reader of the results needs to know about the machine and the build: cores, load,
// compiler, build type, commit. No paths.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace galaxies::bench {

// {"cores", "cpu", "compiler", "build_type", "commit", "load_average_start": [1, 5, 15 min]}
nlohmann::json machine_context();

// The 1, 5 and 15 minute load averages now.
nlohmann::json load_average();

// VmRSS of a process in KiB, from /proc/PID/status; -1 when it cannot be read.
long rss_kib(int pid);

// What a process has cost so far, from /proc/PID/stat: CPU time in user and kernel mode, over all
// its threads (not its children), and the page faults it took without reading a disk.
struct process_cost {
  double cpu_ms = 0;
  long minor_faults = 0;
};
// With `reaped_children`, the CPU time of its children it has waited for is counted too.
std::optional<process_cost> cost_of(int pid, bool reaped_children = false);

// Where a process's main thread is: its state from /proc/PID/stat ('R', 'S', 'D', ...; 0 when it
// cannot be read) and, in state 'D', the kernel function it waits in (/proc/PID/wchan).
struct thread_wait {
  char state = 0;
  std::string in_kernel;
};
thread_wait main_thread_wait(int pid);

}  // namespace galaxies::bench
