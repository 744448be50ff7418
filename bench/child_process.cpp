#include "child_process.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

#include "process/proc_stat.hpp"
#include "process/self_executable.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;
constexpr auto poll_interval = 10ms;

}  // namespace

child_process::child_process(const std::string& program, const std::vector<std::string>& args,
                             if_unusable fallback) {
  std::vector<std::string> owned{std::filesystem::path(program).filename().string()};
  owned.insert(owned.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : owned) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid_ == 0) {
    // Only async-signal-safe calls between fork and exec.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);  // the driver died before prctl
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    // Asio's sockets are not close-on-exec: a child holding the driver's node connection would
    // keep it open after the driver closed it.
    ::close_range(3, ~0U, 0);
    ::execv(program.c_str(), argv.data());
    if (fallback == if_unusable::run_this_program) ::execv(process::running_file, argv.data());
    ::_exit(127);
  }
}

child_process::~child_process() {
  stop(1000ms);
}

bool child_process::running() {
  if (reaped_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    reaped_ = true;
    return false;
  }
  return true;
}

bool child_process::stop(std::chrono::milliseconds grace) {
  if (!running()) return true;
  ::kill(pid_, SIGTERM);
  const auto give_up = clock::now() + grace;
  while (clock::now() < give_up) {
    if (!running()) return true;
    std::this_thread::sleep_for(poll_interval);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  reaped_ = true;
  return false;
}

std::unique_ptr<child_process> start_this_program(std::vector<std::string> args) {
  return std::make_unique<child_process>(process::self_executable(), args,
                                         child_process::if_unusable::run_this_program);
}

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

bool process_alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  // An orphan reparented to a PID 1 that does not reap stays a zombie: it is gone all the same.
  const auto stat = process::read_proc_stat(pid);
  return stat && stat->state != 'Z';
}

bool stop_foreign_process(pid_t pid, std::chrono::milliseconds grace) {
  if (!process_alive(pid)) return true;
  ::kill(pid, SIGTERM);
  const auto give_up = clock::now() + grace;
  while (clock::now() < give_up) {
    if (!process_alive(pid)) return true;
    std::this_thread::sleep_for(poll_interval);
  }
  ::kill(pid, SIGKILL);
  return false;
}

}  // namespace galaxies::bench
