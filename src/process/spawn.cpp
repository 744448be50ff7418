#include "process/spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

#include "process/self_executable.hpp"
#include "transport/shm_channel.hpp"

extern char** environ;

namespace galaxies::process {
namespace {

// The fixed fd number of the channel in every worker: the lowest one past stdio, so a worker's
// fd table is 0, 1, 2 and the channel, nothing else.
constexpr int child_channel_fd = 3;
constexpr int child_rings_fd = 4;  // with rings: their memory file

[[noreturn]] void throw_errno(int error, const std::string& what) {
  throw std::system_error(error, std::system_category(), "spawn_worker: " + what);
}

void check(int rc, const char* what) {
  if (rc != 0) throw_errno(rc, what);
}

class unique_fd {
 public:
  explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
  ~unique_fd() { reset(); }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// posix_spawn's attribute and file-action objects must be destroyed on every path.
struct spawn_attr {
  posix_spawnattr_t value;
  spawn_attr() { check(posix_spawnattr_init(&value), "posix_spawnattr_init"); }
  ~spawn_attr() { posix_spawnattr_destroy(&value); }
  spawn_attr(const spawn_attr&) = delete;
  spawn_attr& operator=(const spawn_attr&) = delete;
};

struct file_actions {
  posix_spawn_file_actions_t value;
  file_actions() { check(posix_spawn_file_actions_init(&value), "posix_spawn_file_actions_init"); }
  ~file_actions() { posix_spawn_file_actions_destroy(&value); }
  file_actions(const file_actions&) = delete;
  file_actions& operator=(const file_actions&) = delete;
};

std::string_view name_of(std::string_view entry) {
  return entry.substr(0, entry.find('='));
}

// The child's environment: ours, minus anything `extra_env` or the channel variable replace, plus
// those. A later duplicate in `extra_env` wins over an earlier one, as with repeated setenv.
std::vector<std::string> child_environment(
    const std::vector<std::pair<std::string, std::string>>& extra_env, bool with_rings) {
  const auto overridden = [&](std::string_view name) {
    if (name == channel_fd_env || name == channel_rings_fd_env) return true;
    for (const auto& [key, value] : extra_env) {
      if (key == name) return true;
    }
    return false;
  };
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    if (!overridden(name_of(*entry))) env.emplace_back(*entry);
  }
  for (std::size_t i = 0; i < extra_env.size(); ++i) {
    const auto& [key, value] = extra_env[i];
    if (key.empty() || key.find('=') != std::string::npos) {
      throw_errno(EINVAL, "invalid environment variable name \"" + key + "\"");
    }
    if (key == channel_fd_env || key == channel_rings_fd_env) continue;
    bool replaced_later = false;
    for (std::size_t j = i + 1; j < extra_env.size(); ++j)
      replaced_later |= extra_env[j].first == key;
    if (!replaced_later) env.push_back(key + "=" + value);
  }
  env.push_back(std::string(channel_fd_env) + "=" + std::to_string(child_channel_fd));
  if (with_rings)
    env.push_back(std::string(channel_rings_fd_env) + "=" + std::to_string(child_rings_fd));
  return env;
}

std::vector<char*> pointers_to(std::vector<std::string>& strings) {
  std::vector<char*> result;
  result.reserve(strings.size() + 1);
  for (auto& s : strings) result.push_back(s.data());
  result.push_back(nullptr);
  return result;
}

}  // namespace

spawned::spawned() = default;
spawned::spawned(spawned&&) noexcept = default;
spawned& spawned::operator=(spawned&&) noexcept = default;
spawned::~spawned() = default;

spawned spawn_worker(const std::vector<std::string>& argv,
                     const std::vector<std::pair<std::string, std::string>>& extra_env,
                     std::size_t ring_bytes) {
  if (argv.empty()) throw_errno(EINVAL, "argv is empty (argv[0] is required)");

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    throw_errno(errno, "socketpair(AF_UNIX, SOCK_STREAM)");
  }
  unique_fd master_end(pair[0]);
  unique_fd child_end(pair[1]);
  // dup2(3, 3) is a no-op that would leave the channel close-on-exec; move it out of the way.
  if (child_end.get() == child_channel_fd) {
    const int moved = ::fcntl(child_end.get(), F_DUPFD_CLOEXEC, child_channel_fd + 1);
    if (moved < 0) throw_errno(errno, "fcntl(F_DUPFD_CLOEXEC)");
    child_end.reset(moved);
  }

  std::unique_ptr<transport::shm_channel> rings;
  unique_fd rings_file;
  if (ring_bytes > 0) {
    int fd = -1;
    rings = transport::shm_channel::create(ring_bytes, fd);
    rings_file.reset(fd);
    // Not where the dup2s below put things: 3 would be overwritten first, 4 left close-on-exec.
    if (rings_file.get() <= child_rings_fd) {
      const int moved = ::fcntl(rings_file.get(), F_DUPFD_CLOEXEC, child_rings_fd + 1);
      if (moved < 0) throw_errno(errno, "fcntl(F_DUPFD_CLOEXEC)");
      rings_file.reset(moved);
    }
  }

  file_actions actions;
  check(posix_spawn_file_actions_adddup2(&actions.value, child_end.get(), child_channel_fd),
        "posix_spawn_file_actions_adddup2");
  if (rings)
    check(posix_spawn_file_actions_adddup2(&actions.value, rings_file.get(), child_rings_fd),
          "posix_spawn_file_actions_adddup2");
  // Belt and braces: Asio sockets and fds the embedding application opened are not necessarily
  // close-on-exec, and a worker holding a copy of another worker's channel would never see EOF.
  check(posix_spawn_file_actions_addclosefrom_np(&actions.value,
                                                 (rings ? child_rings_fd : child_channel_fd) + 1),
        "posix_spawn_file_actions_addclosefrom_np");

  // The master blocks or handles these signals; a worker starts from a clean slate (an ignored
  // signal would otherwise survive exec).
  spawn_attr attr;
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGCHLD, SIGPIPE}) sigaddset(&defaults, sig);
  check(posix_spawnattr_setsigmask(&attr.value, &empty_mask), "posix_spawnattr_setsigmask");
  check(posix_spawnattr_setsigdefault(&attr.value, &defaults), "posix_spawnattr_setsigdefault");
  check(posix_spawnattr_setflags(&attr.value, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
        "posix_spawnattr_setflags");

  std::vector<std::string> args(argv);
  std::vector<std::string> env = child_environment(extra_env, rings != nullptr);
  std::vector<char*> arg_pointers = pointers_to(args);
  std::vector<char*> env_pointers = pointers_to(env);

  pid_t pid = -1;
  const std::string executable = self_executable();
  const int rc = ::posix_spawn(&pid, executable.c_str(), &actions.value, &attr.value,
                               arg_pointers.data(), env_pointers.data());
  if (rc != 0) throw_errno(rc, "posix_spawn(" + executable + ")");
  spawned out;
  out.pid = pid;
  out.channel_fd = master_end.release();
  out.rings = std::move(rings);
  return out;
}

std::optional<int> take_channel_from_environment() {
  const char* text = std::getenv(channel_fd_env);
  if (text == nullptr) return std::nullopt;

  const std::string_view value(text);
  const std::string quoted = std::string(channel_fd_env) + "=\"" + std::string(value) + "\"";
  int fd = -1;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), fd);
  if (value.empty() || value.front() == '-' || ec != std::errc() ||
      end != value.data() + value.size()) {
    throw std::runtime_error(quoted + " is not a file descriptor number");
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    throw std::runtime_error(
        quoted + " names no open file descriptor: " + std::generic_category().message(errno));
  }
  if (!S_ISSOCK(info.st_mode)) {
    throw std::runtime_error(quoted +
                             " does not name a socket (not started by a galaxies master?)");
  }
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
    throw std::runtime_error(
        quoted + ": cannot make it close-on-exec: " + std::generic_category().message(errno));
  }
  ::unsetenv(channel_fd_env);
  return fd;
}

std::unique_ptr<transport::shm_channel> take_channel_rings_from_environment() {
  const char* text = std::getenv(channel_rings_fd_env);
  if (text == nullptr) return nullptr;
  const std::string_view value(text);
  int fd = -1;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), fd);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || fd < 0)
    throw std::runtime_error(std::string(channel_rings_fd_env) + "=\"" + std::string(value) +
                             "\" is not a file descriptor number");
  unique_fd file(fd);
  ::unsetenv(channel_rings_fd_env);
  return transport::shm_channel::open(file.get());
}

}  // namespace galaxies::process
