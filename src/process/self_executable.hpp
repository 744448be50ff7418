// Which file to exec to run this program again: a worker is the master's own program.
// Threading: free functions over the file system; no shared state.
#pragma once

#include <string>

namespace galaxies::process {

// The running program's own file, whatever has become of its path: /proc/self/exe. A process
// forked from this one and not yet exec'd names the same file by it.
inline constexpr const char* running_file = "/proc/self/exe";

// The path /proc/self/exe resolves to, while that path still names the running file: tools that
// follow exec by path (valgrind --trace-children, profilers) can then follow the workers.
// "/proc/self/exe" itself otherwise: when the program was replaced or deleted on disk (an upgrade
// in progress), workers must still run the master's own version, never the new file.
std::string self_executable();

// The same choice for `path` and an open descriptor of the running file: `path` when it is
// absolute and names that same file (device and inode), else "/proc/self/exe".
std::string executable_to_run(const std::string& path, int running_fd);

}  // namespace galaxies::process
