// Low-level pieces of the integration harness: spawning without leaking fds, looking at processes
// through /proc, and asking a master for its status over its Unix socket. Thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "store_server/unique_fd.hpp"

namespace galaxies::test::tools {

using stores::unique_fd;

// posix_spawn of argv[0] with stdin from /dev/null, the given stdout/stderr, every other fd closed
// (whatever a library opened without O_CLOEXEC included) and default signal handling; the test's
// environment with `environment` ("NAME=VALUE" each) set on top. Throws std::system_error on
// failure.
pid_t spawn(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd,
            const std::vector<std::string>& environment = {});

// /proc/PID/stat field 22 (start time in clock ticks since boot); 0 when the process is gone.
std::uint64_t start_time(pid_t pid);
// /proc/PID/stat field 3 ('R', 'S', 'T', 'Z', ...); 0 when the process is gone.
char state(pid_t pid);
// Every process whose parent is `parent`, from /proc.
std::vector<pid_t> children_of(pid_t parent);

// One status exchange with a master as an observer; null on any failure or after `timeout`.
nlohmann::json query_status(const std::string& unix_path, const std::string& cluster,
                            std::chrono::milliseconds timeout);

}  // namespace galaxies::test::tools
