// One game_server host started by the director: its master's pid, its stdout (shared with its
// workers) read line by line, its stderr (galaxies' log) written to a file.
// Threading: the director's one thread.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace director {

class host_process {
 public:
  // Starts `argv` (argv[0] is the program's path) in its own process group, so that a Ctrl-C in
  // the terminal reaches only the director, which then stops every host by its pid.
  host_process(std::string label, const std::vector<std::string>& argv,
               const std::string& log_path);
  ~host_process();
  host_process(const host_process&) = delete;
  host_process& operator=(const host_process&) = delete;

  const std::string& label() const { return label_; }
  pid_t pid() const { return pid_; }
  int stdout_fd() const { return out_fd_; }

  // Reads what is available (the fd is non-blocking) and calls `on_line` for each complete line.
  // Returns false once the pipe is closed: the master and all its workers are gone.
  bool read_lines(const std::function<void(std::string_view)>& on_line);

  void signal(int sig) const;  // to the master, by pid, while it is alive
  bool reap();                 // true once the master has exited (waitpid, no blocking)
  bool exited() const { return status_.has_value(); }
  int wait_status() const { return status_.value_or(-1); }

 private:
  std::string label_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string pending_;  // a partial line
  std::optional<int> status_;
};

// "exit status 0", "killed by signal 9 (SIGKILL)": a wait status for people.
std::string describe_wait_status(int status);

}  // namespace director
