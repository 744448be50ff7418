// The driver's hosts: copies of this program started with other arguments, each stopped by its PID.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace galaxies::bench {

class child_process {
 public:
  // Starts /proc/self/exe with `args` (argv[1..]). The child gets SIGTERM when this thread dies,
  // so that a killed driver leaves no host behind. Call before any thread exists (fork).
  explicit child_process(const std::vector<std::string>& args);
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  bool running();  // reaps the child if it has exited

  // SIGTERM, then SIGKILL if it has not exited within `grace`; reaps it. True if it stopped on
  // SIGTERM.
  bool stop(std::chrono::milliseconds grace);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// True while `pid` (not our child) exists and is not a zombie.
bool process_alive(pid_t pid);

// SIGTERM to a process that is not our child, then SIGKILL after `grace`; true if it went.
bool stop_foreign_process(pid_t pid, std::chrono::milliseconds grace);

}  // namespace galaxies::bench
