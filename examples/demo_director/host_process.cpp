#include "host_process.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace director {

host_process::host_process(std::string label, const std::vector<std::string>& argv,
                           const std::string& log_path)
    : label_(std::move(label)) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    throw std::system_error(errno, std::generic_category(), "pipe2");
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::system_error(errno, std::generic_category(), "open " + log_path);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();

  pid_ = ::fork();
  if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid_ == 0) {
    // The child: only async-signal-safe calls until exec.
    ::setpgid(0, 0);
    // If the director dies, the host stops gracefully (and stops its workers).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(args[0], args.data());
    const char* why = std::strerror(errno);  // to the host's log, where the director looks
    for (const char* part : {"cannot start ", static_cast<const char*>(args[0]), ": ", why, "\n"})
      if (::write(STDERR_FILENO, part, std::strlen(part)) < 0) break;
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  ::close(log_fd);
  out_fd_ = pipe_fds[0];
  ::fcntl(out_fd_, F_SETFL, ::fcntl(out_fd_, F_GETFL) | O_NONBLOCK);
}

host_process::~host_process() {
  if (out_fd_ >= 0) ::close(out_fd_);
}

bool host_process::read_lines(const std::function<void(std::string_view)>& on_line) {
  if (out_fd_ < 0) return false;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(out_fd_, buffer, sizeof buffer);
    if (n > 0) {
      pending_.append(buffer, static_cast<std::size_t>(n));
      std::size_t start = 0;
      for (std::size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1)
        on_line(std::string_view(pending_).substr(start, nl - start));
      pending_.erase(0, start);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    ::close(out_fd_);  // EOF (or an error we cannot do anything about)
    out_fd_ = -1;
    return false;
  }
}

void host_process::signal(int sig) const {
  if (!status_ && pid_ > 0) ::kill(pid_, sig);
}

bool host_process::reap() {
  if (status_) return true;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) status_ = status;
  return status_.has_value();
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) +
           (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "wait status " + std::to_string(status);
}

}  // namespace director
