// What every way of starting a worker shares (spawn_worker's exec, the fork server's fork): the
// channel's two ends, and the environment variables a worker is handed.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/unique_fd.hpp"
#include "transport/shm_channel.hpp"

namespace galaxies::process {

using environment_list = std::vector<std::pair<std::string, std::string>>;

// A new worker's channel: an AF_UNIX stream socketpair (both ends close-on-exec), and with
// `ring_bytes` > 0 its shared-memory rings, the master's side made, the worker's fds in `theirs`.
struct worker_channel {
  base::unique_fd master_end;
  base::unique_fd child_end;
  std::unique_ptr<transport::shm_channel> rings;
  transport::shm_channel_fds theirs;
};

// Throws std::system_error on failure.
worker_channel make_worker_channel(std::size_t ring_bytes);

// Throws std::system_error (EINVAL) naming the first of `extra_env`'s names that no environment
// can hold (empty, or with a '=').
void check_variable_names(const environment_list& extra_env);

// True for the variables that name a worker's channel: only its master sets them.
bool is_channel_variable(std::string_view name);

// Throws std::system_error for `error`, its text `who: what` (who: the way of starting).
[[noreturn]] void throw_errno(int error, std::string_view who, const std::string& what);

}  // namespace galaxies::process
