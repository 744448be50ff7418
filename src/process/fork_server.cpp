#include "process/fork_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>

#include "process/proc_tasks.hpp"
#include "process/self_executable.hpp"

namespace galaxies::process {
namespace {

using base::unique_fd;

// What a request may carry: the environment it adds, and the worker's fds (channel, and with
// rings their memory file and two doorbells).
constexpr std::size_t max_request_bytes = 64 * 1024;
constexpr std::size_t max_request_fds = 4;
// Every request's first byte: an empty datagram would read as the master's EOF.
constexpr char request_marker = 'W';
// A server that has not answered in this long is hung (stopped, or its core never came): killed,
// and workers are exec'd instead. Far past any fork's time even on a saturated machine.
constexpr int answer_timeout_ms = 30'000;

struct answer {
  std::int32_t pid = -1;
  std::int32_t error = 0;  // the errno of a fork that failed; 0 when `pid` runs
};

pid_t forked_master = 0;  // in a worker the server forked: the master's pid

[[noreturn]] void throw_errno(int error, const std::string& what) {
  process::throw_errno(error, "fork server", what);
}

void write_answer(int socket, answer a) {
  ssize_t n;
  do n = ::send(socket, &a, sizeof a, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
}

// ---- in the server ------------------------------------------------------------------------------

// One request, read: the worker's fds (owned), and "NAME=VALUE" entries, NUL-separated.
struct request {
  std::vector<unique_fd> fds;
  std::string environment;
};

// nullopt when the master has gone (EOF or an error); a request with no fds when it was malformed.
std::optional<request> receive(int socket) {
  request r;
  r.environment.resize(max_request_bytes);
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * max_request_fds)> control{};
  iovec io{r.environment.data(), r.environment.size()};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  ssize_t n;
  do n = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return std::nullopt;
  for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      r.fds.emplace_back(fd);
    }
  }
  r.environment.resize(static_cast<std::size_t>(n));
  const bool whole = (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) == 0;
  if (!whole || r.environment.front() != request_marker ||
      (r.fds.size() != 1 && r.fds.size() != max_request_fds))
    r.fds.clear();
  r.environment.erase(0, 1);
  return r;
}

// In the worker, before it returns into run(): the state an exec'd worker starts in, and its
// channel named in its environment. Nothing here may fail in a way the worker could not report
// on its channel; setenv failing (no memory) leaves the variable unset, which take_channel_*
// then reports.
void become_worker(request& r, pid_t master) {
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  for (int sig : {SIGTERM, SIGINT, SIGCHLD, SIGPIPE}) ::signal(sig, SIG_DFL);
  std::string_view entries(r.environment);
  while (!entries.empty()) {
    const std::string_view entry = entries.substr(0, entries.find('\0'));
    entries.remove_prefix(std::min(entries.size(), entry.size() + 1));
    const auto equals = entry.find('=');
    if (equals == std::string_view::npos || equals == 0) continue;
    ::setenv(std::string(entry.substr(0, equals)).c_str(),
             std::string(entry.substr(equals + 1)).c_str(), 1);
  }
  const char* names[] = {channel_fd_env, channel_rings_fd_env, channel_doorbell_fd_env,
                         channel_master_doorbell_fd_env};
  for (std::size_t i = 0; i < r.fds.size(); ++i) {
    // The worker's own from here, taken as an exec'd worker takes its (take_channel_*).
    ::setenv(names[i], std::to_string(r.fds[i].release()).c_str(), 1);
  }
  forked_master = master;
}

// The server's loop. Returns only in a worker it forked (true), ready to run; the server itself
// and its go-betweens end with _exit, never returning into the application.
bool serve(int socket, pid_t master) {
  // Ctrl-C reaches the whole foreground group: the master drains, and may still need workers.
  ::signal(SIGINT, SIG_IGN);
  while (true) {
    auto r = receive(socket);
    if (!r) ::_exit(0);  // the master has gone or ended the server
    if (r->fds.empty()) {
      write_answer(socket, {-1, EPROTO});
      continue;
    }
    int pid_pipe[2];
    if (::pipe2(pid_pipe, O_CLOEXEC) != 0) {
      write_answer(socket, {-1, errno});
      continue;
    }
    unique_fd pid_in(pid_pipe[0]);
    unique_fd pid_out(pid_pipe[1]);
    const pid_t go_between = ::fork();
    if (go_between == 0) {
      const pid_t worker = ::fork();
      if (worker == 0) {
        // The server's socket is closed as start() returns.
        pid_in.reset();
        pid_out.reset();
        become_worker(*r, master);
        return true;
      }
      const answer a = worker > 0 ? answer{worker, 0} : answer{-1, errno};
      (void)!::write(pid_out.get(), &a, sizeof a);
      ::_exit(0);
    }
    if (go_between < 0) {
      write_answer(socket, {-1, errno});
      continue;
    }
    pid_out.reset();
    answer a{-1, EPIPE};
    ssize_t n;
    do n = ::read(pid_in.get(), &a, sizeof a);
    while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof a)) a = {-1, EPIPE};
    // The go-between has exited once it is reaped, so the worker is the master's by then: it may
    // wait for it by pid as soon as it has the answer.
    while (::waitpid(go_between, nullptr, 0) < 0 && errno == EINTR) {
    }
    write_answer(socket, a);
  }
}

}  // namespace

std::unique_ptr<fork_server> fork_server::start(std::string& why_not) {
  why_not.clear();
  const std::size_t threads = threads_of(::getpid()).size();
  if (threads != 1) {
    why_not = threads == 0 ? "/proc/self/task cannot be read"
                           : std::to_string(threads) +
                                 " threads run in this process (fork copies only the caller)";
    return nullptr;
  }
  auto children = children_of(::getpid());
  if (!children) {
    why_not = "this kernel does not list a process's children (CONFIG_PROC_CHILDREN)";
    return nullptr;
  }
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    why_not = std::string("prctl(PR_SET_CHILD_SUBREAPER): ") + std::strerror(errno);
    return nullptr;
  }
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    why_not = std::string("socketpair(AF_UNIX, SOCK_SEQPACKET): ") + std::strerror(errno);
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
    return nullptr;
  }
  unique_fd ours(pair[0]);
  unique_fd theirs(pair[1]);
  const pid_t master = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ours.reset();
    // The server must not outlive its master, nor serve another.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != master) ::_exit(0);
    try {
      serve(theirs.get(), master);
    } catch (...) {
      ::_exit(70);  // only a worker returns from serve(); nothing it runs throws
    }
    return nullptr;  // in a worker: run() goes on as one
  }
  if (pid < 0) {
    why_not = std::string("fork: ") + std::strerror(errno);
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
    return nullptr;
  }
  return std::unique_ptr<fork_server>(new fork_server(std::move(ours), pid, std::move(*children)));
}

fork_server::fork_server(unique_fd socket, pid_t pid, std::set<pid_t> children_before)
    : socket_(std::move(socket)), pid_(pid), children_before_(std::move(children_before)) {}

fork_server::~fork_server() {
  std::lock_guard exchange(exchange_mutex_);
  socket_.reset();
  std::lock_guard lock(mutex_);
  if (reaped_) return;
  // It holds nothing that needs finishing: a fork it is in would still hand its worker over to
  // this process, which is going too.
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

void fork_server::lost(const std::string& why) {
  std::lock_guard lock(mutex_);
  gone(why);
}

void fork_server::gone(const std::string& why) {
  if (std::exchange(gone_, true)) return;
  spdlog::warn("the fork server (pid {}) {}; workers are exec'd from now on", pid_, why);
  if (!reaped_) ::kill(pid_, SIGKILL);  // then reaped by reap_strays; never a reused pid
}

pid_t fork_server::ask(const std::string& environment, std::size_t ring_bytes, spawned& child) {
  auto [master_end, child_end, rings, theirs] = make_worker_channel(ring_bytes);
  int fds[max_request_fds] = {child_end.get(), theirs.memory.get(), theirs.doorbell.get(),
                              theirs.peer_doorbell.get()};
  const std::size_t fd_count = rings ? max_request_fds : 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof fds)> control{};
  iovec io{const_cast<char*>(environment.data()), environment.size()};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = CMSG_SPACE(sizeof(int) * fd_count);
  cmsghdr* c = CMSG_FIRSTHDR(&message);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fd_count);
  std::memcpy(CMSG_DATA(c), fds, sizeof(int) * fd_count);

  std::lock_guard exchange(exchange_mutex_);
  ssize_t n;
  do n = ::sendmsg(socket_.get(), &message, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    lost(std::string("cannot be asked: ") + std::strerror(errno));
    return 0;
  }
  pollfd ready{socket_.get(), POLLIN, 0};
  int polled;
  do polled = ::poll(&ready, 1, answer_timeout_ms);
  while (polled < 0 && errno == EINTR);
  if (polled == 0) {
    lost("did not answer in " + std::to_string(answer_timeout_ms / 1000) + " s");
    return 0;
  }
  answer a;
  do n = ::recv(socket_.get(), &a, sizeof a, 0);
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof a)) {
    lost(n == 0 ? "has exited" : "answered garbage");
    return 0;
  }
  if (a.pid <= 0) throw_errno(a.error != 0 ? a.error : EPROTO, "fork");
  child.pid = a.pid;
  child.channel_fd = master_end.release();
  child.rings = std::move(rings);
  return a.pid;
}

spawned fork_server::spawn(const std::vector<std::string>& argv, const environment_list& extra_env,
                           std::size_t ring_bytes) {
  if (argv.empty()) throw_errno(EINVAL, "argv is empty (argv[0] is required)");
  check_variable_names(extra_env);
  std::string environment(1, request_marker);
  for (const auto& [name, value] : extra_env) {
    if (is_channel_variable(name)) continue;
    environment.append(name).append(1, '=').append(value).append(1, '\0');
  }
  // Until the new worker is in workers_, reap_strays reaps nothing: it might be that worker,
  // exited already, whose status is the supervisor's.
  bool forking;
  {
    std::lock_guard lock(mutex_);
    ++starting_;
    forking = !gone_ && environment.size() <= max_request_bytes;
  }
  spawned child;
  try {
    if (!forking || ask(environment, ring_bytes, child) == 0)
      child = spawn_worker_from(self_executable(), argv, extra_env, ring_bytes);
  } catch (...) {
    std::lock_guard lock(mutex_);
    --starting_;
    throw;
  }
  std::lock_guard lock(mutex_);
  --starting_;
  workers_.insert(child.pid);
  return child;
}

void fork_server::reap_strays() {
  const auto children = children_of(::getpid());
  if (!children) return;
  std::lock_guard lock(mutex_);
  if (starting_ > 0) return;  // the supervisor reaps once the worker is adopted
  for (pid_t child : *children) {
    if (workers_.count(child) != 0 || children_before_.count(child) != 0) continue;
    if (child == pid_ && reaped_) continue;
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) != child) continue;
    if (child == pid_) {
      reaped_ = true;
      gone(WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                               : "exited with code " + std::to_string(WEXITSTATUS(status)));
    } else {
      spdlog::debug("reaped pid {}, an orphan of a worker", child);
    }
  }
}

void fork_server::forget(pid_t pid) {
  std::lock_guard lock(mutex_);
  workers_.erase(pid);
}

pid_t master_pid() {
  return forked_master != 0 ? forked_master : ::getppid();
}

}  // namespace galaxies::process
