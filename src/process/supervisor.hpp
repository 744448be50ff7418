// The master's supervisor: keeps N worker slots running, reaps exits, respawns with capped
// exponential backoff, and stops respawning a crash-looping slot (and says so).
// Threading: lives on one executor; all members and callbacks run there. Only starting a process
// (posix_spawn, or the fork server's exchange) runs on a thread of its own (start()).
#pragma once

#include <sys/types.h>

#include <asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "process/restart_policy.hpp"
#include "process/spawn.hpp"
#include "transport/shm_channel.hpp"

namespace galaxies::process {

class fork_server;

// `forks`, when given, starts the workers (fork_server.hpp) and is told of their exits.
class supervisor {
 public:
  struct callbacks {
    // A worker process started in `slot`; `channel_fd` is the master's end and `rings` the
    // master's side of the channel's rings, if any (ownership of both passes).
    std::function<void(std::size_t slot, pid_t pid, int channel_fd,
                       std::unique_ptr<transport::shm_channel> rings)>
        spawned;
    // A worker process was reaped; `wait_status` as from waitpid. Only for one that started
    // before stop(): callbacks::spawned had it, if set.
    std::function<void(std::size_t slot, pid_t pid, int wait_status)> exited;
    // The slot crash-looped and will not be respawned.
    std::function<void(std::size_t slot, const std::string& why)> gave_up;
  };

  supervisor(const asio::any_io_executor& executor, std::vector<std::string> argv,
             std::size_t workers, restart_policy policy, callbacks cb,
             std::vector<std::pair<std::string, std::string>> extra_env = {},
             std::size_t ring_bytes = 0, std::shared_ptr<fork_server> forks = nullptr);
  ~supervisor();
  supervisor(const supervisor&) = delete;
  supervisor& operator=(const supervisor&) = delete;

  // Starts every slot's worker. Returns at once: posix_spawn waits until the child has called
  // exec (a fork server until it has forked), which on a saturated machine can take a second, so
  // workers are started on a thread of the supervisor's own and adopted on the executor
  // (callbacks::spawned) once they run.
  void start();

  // Stops respawning and asks every live worker to stop: `tell(pid)`, when given, tells it some
  // other way (its master's `stopping` frame) and says whether it could; every worker it could
  // not tell gets SIGTERM. SIGKILL to those still alive after `grace`; `done` runs once all are
  // reaped.
  void stop(std::chrono::milliseconds grace, std::function<void()> done,
            const std::function<bool(pid_t)>& tell = {});

  std::vector<pid_t> live_pids() const;

  // SIGKILLs `pid` if it is a worker of ours not yet reaped (so never a recycled pid); the slot
  // is then restarted as after any exit. False if there was no such process.
  bool kill(pid_t pid);

  // Runs `done` with the wait status of worker `pid` once it is reaped: inside this call if it
  // was reaped already (the last exit of each slot is remembered), else from the executor when
  // it is, or with -1 after `within` (or at once if `pid` was never a worker of ours). Not run
  // if the supervisor is destroyed first.
  void await_exit(pid_t pid, std::chrono::milliseconds within, std::function<void(int)> done);

  // Where each slot stands, for status and metrics.
  struct slot_report {
    enum class state : std::uint8_t { running, restarting, given_up, stopping, stopped };
    std::size_t slot = 0;
    pid_t pid = 0;  // 0 when no process runs in it
    state what = state::running;
    std::uint64_t starts = 0;  // processes started in it (the first included)
  };
  std::vector<slot_report> slots() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace galaxies::process
