// Starting workers: the running program again, with its master channel handed over as an inherited
// fd named in an environment variable (as Node's cluster does). fork+exec, never a bare fork: the
// master may have threads.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace galaxies::process {

inline constexpr const char* channel_fd_env = "GALAXIES_CHANNEL_FD";
inline constexpr const char* worker_index_env = "GALAXIES_WORKER_INDEX";
inline constexpr const char* host_id_env = "GALAXIES_HOST_ID";

struct spawned {
  pid_t pid = -1;
  int channel_fd = -1;  // the master's end of the socketpair; close-on-exec, owned by the caller
};

// Starts this same program (self_executable()) with `argv` (argv[0] included) and the current
// environment plus `extra_env`, the child's end of a new AF_UNIX stream socketpair as an inherited
// fd whose number is in GALAXIES_CHANNEL_FD. Every other fd of the master stays closed in the child
// (all are close-on-exec). Throws std::system_error on failure.
spawned spawn_worker(const std::vector<std::string>& argv,
                     const std::vector<std::pair<std::string, std::string>>& extra_env);

// In a worker: the inherited channel fd, made close-on-exec, with the variable removed from the
// environment so the worker's own children do not take it for theirs. nullopt when not a worker.
// Throws std::runtime_error when the variable is set but does not name an open socket.
std::optional<int> take_channel_from_environment();

}  // namespace galaxies::process
