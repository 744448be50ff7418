// Starting workers: the running program again, with its master channel handed over as an inherited
// fd named in an environment variable (as Node's cluster does). fork+exec, never a bare fork: the
// master may have threads.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace galaxies::transport {
class shm_channel;
}

namespace galaxies::process {

inline constexpr const char* channel_fd_env = "GALAXIES_CHANNEL_FD";
// The memory file of the channel's rings (transport/shm_channel.hpp), when the master made one.
inline constexpr const char* channel_rings_fd_env = "GALAXIES_CHANNEL_RINGS_FD";
// With rings, the channel's doorbells (pipe ends): the read end of the worker's, which it waits
// on, and the write end of its master's, which it rings.
inline constexpr const char* channel_doorbell_fd_env = "GALAXIES_CHANNEL_DOORBELL_FD";
inline constexpr const char* channel_master_doorbell_fd_env = "GALAXIES_CHANNEL_MASTER_DOORBELL_FD";
inline constexpr const char* worker_index_env = "GALAXIES_WORKER_INDEX";
inline constexpr const char* host_id_env = "GALAXIES_HOST_ID";

struct spawned {
  spawned();
  spawned(spawned&&) noexcept;
  spawned& operator=(spawned&&) noexcept;
  ~spawned();

  pid_t pid = -1;
  int channel_fd = -1;  // the master's end of the socketpair; close-on-exec, owned by the caller
  std::unique_ptr<transport::shm_channel> rings;  // the master's side of them, or none
};

// Starts this same program (self_executable()) with `argv` (argv[0] included) and the current
// environment plus `extra_env`, the child's end of a new AF_UNIX stream socketpair as an inherited
// fd whose number is in GALAXIES_CHANNEL_FD. Every other fd of the master stays closed in the child
// (all are close-on-exec). Throws std::system_error on failure.
// With `ring_bytes` > 0, the channel's bytes go through two shared-memory rings of that many
// bytes (a power of two) instead, with two pipes for doorbells, the socket carrying only the
// end; the child finds their memory file in GALAXIES_CHANNEL_RINGS_FD and its doorbells in
// GALAXIES_CHANNEL_DOORBELL_FD and GALAXIES_CHANNEL_MASTER_DOORBELL_FD.
spawned spawn_worker(const std::vector<std::string>& argv,
                     const std::vector<std::pair<std::string, std::string>>& extra_env,
                     std::size_t ring_bytes = 0);

// The same from `executable`, a path of this program chosen earlier (self_executable()), or from
// the running file if that path cannot be exec'd any more: a linker or an upgrade renames the old
// file away before the new one is in place.
spawned spawn_worker_from(const std::string& executable, const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& extra_env,
                          std::size_t ring_bytes = 0);

// In a worker: the inherited channel fd, made close-on-exec, with the variable removed from the
// environment so the worker's own children do not take it for theirs. nullopt when not a worker.
// Throws std::runtime_error when the variable is set but does not name an open socket.
std::optional<int> take_channel_from_environment();
// In a worker: the channel's rings, when the master made them (the variables removed, the memory
// file closed once mapped, the doorbells kept, close-on-exec). Throws std::runtime_error, saying
// which and why, when a variable is missing or names no such file: the memory file must hold two
// rings, the doorbell a pipe's read end, the master's doorbell a pipe's write end (of another
// pipe), and no fd may be named twice. Makes the doorbells non-blocking.
std::unique_ptr<transport::shm_channel> take_channel_rings_from_environment();

}  // namespace galaxies::process
