// Workers forked instead of exec'd (options::worker_start): a server process, forked from the
// master when run() begins and before the master starts anything, forks each worker from that
// copy on request, as Android's zygote does. A worker so started skips the exec, the dynamic
// loader and the static initialisers: most of what a worker costs to start (bench/RESULTS.md).
//
// A worker must be the master's own child (the supervisor waits for it by pid): the server
// forks a go-between that forks the worker and exits at once, and the master, a child subreaper
// (prctl(2)), adopts the orphan. It so also adopts its workers' orphans, which it reaps
// (reap_strays).
//
// The request travels on a SOCK_SEQPACKET socketpair: the environment to add as one datagram,
// the worker's fds (its channel end, and its rings' memory and doorbells) with it as
// SCM_RIGHTS; the answer is the worker's pid or the fork's errno.
// Threading: spawn(), reap_strays() and forget() may be called from any threads.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/unique_fd.hpp"
#include "process/spawn.hpp"
#include "process/worker_channel.hpp"

namespace galaxies::process {

class fork_server {
 public:
  // Forks the server. This process must have no thread but the caller (fork copies only the
  // caller, and the server forks again); it becomes the subreaper of what the server forks.
  // Returns the server's handle here, or nullptr with `why_not` saying why it cannot start.
  // Returns too in every worker the server forks: nullptr, `why_not` empty, the worker's
  // environment naming its channel as spawn_worker's does (take_channel_from_environment), its
  // signal mask empty and SIGTERM, SIGINT, SIGCHLD and SIGPIPE at their defaults, as after an
  // exec. Its other fds are those this process had open when the server was forked.
  static std::unique_ptr<fork_server> start(std::string& why_not);

  // Ends the server and reaps it.
  ~fork_server();
  fork_server(const fork_server&) = delete;
  fork_server& operator=(const fork_server&) = delete;

  // Starts a worker as spawn_worker does (the same channel, the same environment added), forked
  // by the server; or, once the server has gone, exec'd by spawn_worker (said once, as a
  // warning). Blocks until the worker runs. Throws std::system_error when neither can start it.
  spawned spawn(const std::vector<std::string>& argv, const environment_list& extra_env,
                std::size_t ring_bytes = 0);

  // Reaps, without waiting, every exited child of this process that is none of the workers
  // spawn() returned and the caller has not forget()-ten, nor a child it had when the server
  // started: orphans of workers, and the server if it has died (workers are exec'd from then on).
  void reap_strays();
  // `pid` was spawn()'s and has been reaped by the caller: a later child may reuse the number.
  void forget(pid_t pid);

  pid_t pid() const { return pid_; }

 private:
  fork_server(base::unique_fd socket, pid_t pid, std::set<pid_t> children_before);
  // Asks the server for a worker: its pid, `child` filled in; 0 when the server has gone (said
  // by lost()). Throws std::system_error when the server could not fork.
  pid_t ask(const std::string& environment, std::size_t ring_bytes, spawned& child);
  // The server can fork no more; `why` says what happened, once. gone(): under mutex_.
  void lost(const std::string& why);
  void gone(const std::string& why);

  base::unique_fd socket_;
  const pid_t pid_;
  const std::set<pid_t> children_before_;
  std::mutex exchange_mutex_;  // one request on the socket at a time
  // The rest, never held across an exchange: the master's loop takes it in reap_strays.
  std::mutex mutex_;
  bool gone_ = false;  // the server has died or stopped answering: exec from now on
  bool reaped_ = false;
  int starting_ = 0;  // spawn() calls whose worker is not in workers_ yet
  std::set<pid_t> workers_;
};

// In a worker: the pid of its master. A forked worker's parent is the go-between for a moment.
pid_t master_pid();

}  // namespace galaxies::process
