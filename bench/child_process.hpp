// The processes the driver starts (its hosts, relays, NATS servers), each stopped by its PID.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace galaxies::bench {

class child_process {
 public:
  // What the child runs when `program` cannot be exec'd.
  enum class if_unusable {
    fail,              // nothing: it exits 127
    run_this_program,  // this program's running file: `program` was this program's path, which
                       // a rebuild or an upgrade may have renamed away since it was chosen
  };
  // Starts `program` (a path) with `args` as argv[1..]. Its stdout goes to our stderr, so that
  // `--json -` keeps stdout for the JSON. The child gets SIGTERM when the thread that started it
  // dies, so that a killed driver leaves nothing behind.
  child_process(const std::string& program, const std::vector<std::string>& args,
                if_unusable fallback = if_unusable::fail);
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

// A child running this program again (the file it was started from, by its path while that
// names it: process::self_executable) with `args`: the hosts and the relays.
std::unique_ptr<child_process> start_this_program(std::vector<std::string> args);

// The first executable file called `name` in $PATH; "" if there is none.
std::string find_in_path(const std::string& name);

// True while `pid` (not our child) exists and is not a zombie.
bool process_alive(pid_t pid);

// SIGTERM to a process that is not our child, then SIGKILL after `grace`; true if it went.
bool stop_foreign_process(pid_t pid, std::chrono::milliseconds grace);

}  // namespace galaxies::bench
