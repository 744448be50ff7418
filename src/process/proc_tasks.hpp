// The threads and the children of a process, from /proc/PID/task (proc(5)).
// Threading: free functions over the file system; no shared state.
#pragma once

#include <sys/types.h>

#include <optional>
#include <set>
#include <vector>

namespace galaxies::process {

// Its threads' ids; empty when the process is gone or /proc cannot be read.
std::vector<pid_t> threads_of(pid_t pid);

// The children of all its threads; nullopt when the process is gone or the kernel does not list
// children (/proc/PID/task/TID/children needs CONFIG_PROC_CHILDREN).
std::optional<std::set<pid_t>> children_of(pid_t pid);

}  // namespace galaxies::process
