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

#include "base/unique_fd.hpp"
#include "process/self_executable.hpp"
#include "process/worker_channel.hpp"
#include "transport/shm_channel.hpp"

extern char** environ;

namespace galaxies::process {
namespace {

using base::unique_fd;

// The fixed fd number of the channel in every worker: the lowest one past stdio, so a worker's
// fd table is 0, 1, 2 and the channel, nothing else; with rings, their memory file and the two
// doorbells follow.
constexpr int child_channel_fd = 3;
constexpr int child_rings_fd = 4;
constexpr int child_doorbell_fd = 5;
constexpr int child_master_doorbell_fd = 6;

[[noreturn]] void throw_errno(int error, const std::string& what) {
  process::throw_errno(error, "spawn_worker", what);
}

void check(int rc, const char* what) {
  if (rc != 0) throw_errno(rc, what);
}

// The dup2s that put the child's fds in place would overwrite a source numbered among their
// targets before reading it, and dup2(n, n) would leave n close-on-exec: every source goes above.
void move_above(unique_fd& fd, int last) {
  if (fd.get() > last) return;
  const int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, last + 1);
  if (moved < 0) throw_errno(errno, "fcntl(F_DUPFD_CLOEXEC)");
  fd.reset(moved);
}

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

void hand_over(file_actions& actions, const unique_fd& fd, int child_fd) {
  check(posix_spawn_file_actions_adddup2(&actions.value, fd.get(), child_fd),
        "posix_spawn_file_actions_adddup2");
}

std::string_view name_of(std::string_view entry) {
  return entry.substr(0, entry.find('='));
}

// The child's environment: ours, minus anything `extra_env` or the channel variable replace, plus
// those. A later duplicate in `extra_env` wins over an earlier one, as with repeated setenv.
std::vector<std::string> child_environment(
    const std::vector<std::pair<std::string, std::string>>& extra_env, bool with_rings) {
  const auto overridden = [&](std::string_view name) {
    if (is_channel_variable(name)) return true;
    for (const auto& [key, value] : extra_env) {
      if (key == name) return true;
    }
    return false;
  };
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    if (!overridden(name_of(*entry))) env.emplace_back(*entry);
  }
  check_variable_names(extra_env);
  for (std::size_t i = 0; i < extra_env.size(); ++i) {
    const auto& [key, value] = extra_env[i];
    if (is_channel_variable(key)) continue;
    bool replaced_later = false;
    for (std::size_t j = i + 1; j < extra_env.size(); ++j)
      replaced_later |= extra_env[j].first == key;
    if (!replaced_later) env.push_back(key + "=" + value);
  }
  env.push_back(std::string(channel_fd_env) + "=" + std::to_string(child_channel_fd));
  if (with_rings) {
    env.push_back(std::string(channel_rings_fd_env) + "=" + std::to_string(child_rings_fd));
    env.push_back(std::string(channel_doorbell_fd_env) + "=" + std::to_string(child_doorbell_fd));
    env.push_back(std::string(channel_master_doorbell_fd_env) + "=" +
                  std::to_string(child_master_doorbell_fd));
  }
  return env;
}

std::vector<char*> pointers_to(std::vector<std::string>& strings) {
  std::vector<char*> result;
  result.reserve(strings.size() + 1);
  for (auto& s : strings) result.push_back(s.data());
  result.push_back(nullptr);
  return result;
}

// A descriptor the master handed over, named in `variable`: a number past stdio, open, of file
// type `type` (`what` names it), made close-on-exec so that the worker's own children
// do not inherit it, the variable removed from the environment. Throws std::runtime_error.
int take_inherited_fd(const char* variable, mode_t type, const char* what) {
  const char* text = std::getenv(variable);
  const std::string_view value(text == nullptr ? "" : text);
  const std::string quoted = std::string(variable) + "=\"" + std::string(value) + "\"";
  if (text == nullptr) throw std::runtime_error(std::string(variable) + " is not set");
  int fd = -1;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), fd);
  if (value.empty() || value.front() == '-' || ec != std::errc() ||
      end != value.data() + value.size()) {
    throw std::runtime_error(quoted + " is not a file descriptor number");
  }
  // A master hands over nothing there, and closing one on a refusal would lose the error's way out.
  if (fd <= STDERR_FILENO) throw std::runtime_error(quoted + " names a standard stream");
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    throw std::runtime_error(
        quoted + " names no open file descriptor: " + std::generic_category().message(errno));
  }
  if ((info.st_mode & S_IFMT) != type) {
    throw std::runtime_error(quoted + " does not name " + what +
                             " (not started by a galaxies master?)");
  }
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
    throw std::runtime_error(
        quoted + ": cannot make it close-on-exec: " + std::generic_category().message(errno));
  }
  ::unsetenv(variable);
  return fd;
}

}  // namespace

bool is_channel_variable(std::string_view name) {
  for (const char* variable : {channel_fd_env, channel_rings_fd_env, channel_doorbell_fd_env,
                               channel_master_doorbell_fd_env})
    if (name == variable) return true;
  return false;
}

void throw_errno(int error, std::string_view who, const std::string& what) {
  throw std::system_error(error, std::system_category(), std::string(who) + ": " + what);
}

void check_variable_names(const environment_list& extra_env) {
  for (const auto& [key, value] : extra_env)
    if (key.empty() || key.find('=') != std::string::npos)
      throw_errno(EINVAL, "invalid environment variable name \"" + key + "\"");
}

worker_channel make_worker_channel(std::size_t ring_bytes) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    throw_errno(errno, "socketpair(AF_UNIX, SOCK_STREAM)");
  }
  worker_channel channel;
  channel.master_end.reset(pair[0]);
  channel.child_end.reset(pair[1]);
  if (ring_bytes > 0) channel.rings = transport::shm_channel::create(ring_bytes, channel.theirs);
  return channel;
}

spawned::spawned() = default;
spawned::spawned(spawned&&) noexcept = default;
spawned& spawned::operator=(spawned&&) noexcept = default;
spawned::~spawned() = default;

spawned spawn_worker(const std::vector<std::string>& argv,
                     const std::vector<std::pair<std::string, std::string>>& extra_env,
                     std::size_t ring_bytes) {
  return spawn_worker_from(self_executable(), argv, extra_env, ring_bytes);
}

spawned spawn_worker_from(const std::string& executable, const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& extra_env,
                          std::size_t ring_bytes) {
  if (argv.empty()) throw_errno(EINVAL, "argv is empty (argv[0] is required)");

  // The worker's ends are closed here when this returns or throws, the child holding its own
  // copies by then, so that each doorbell end is held by one process only (shm_channel.hpp).
  auto [master_end, child_end, rings, theirs] = make_worker_channel(ring_bytes);
  const int last_fd = rings ? child_master_doorbell_fd : child_channel_fd;
  for (unique_fd* fd : {&child_end, &theirs.memory, &theirs.doorbell, &theirs.peer_doorbell})
    if (*fd) move_above(*fd, last_fd);

  file_actions actions;
  hand_over(actions, child_end, child_channel_fd);
  if (rings) {
    hand_over(actions, theirs.memory, child_rings_fd);
    hand_over(actions, theirs.doorbell, child_doorbell_fd);
    hand_over(actions, theirs.peer_doorbell, child_master_doorbell_fd);
  }
  // Belt and braces: Asio sockets and fds the embedding application opened are not necessarily
  // close-on-exec, and a worker holding a copy of another worker's channel would never see EOF.
  check(posix_spawn_file_actions_addclosefrom_np(&actions.value, last_fd + 1),
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
  const auto spawn = [&](const std::string& executable) {
    return ::posix_spawn(&pid, executable.c_str(), &actions.value, &attr.value, arg_pointers.data(),
                         env_pointers.data());
  };
  int rc = spawn(executable);
  // The path named the running file when it was chosen, and may not any more: a linker or an
  // upgrade renames the old file away before the new one is in place (a host of the saturation
  // scenario lost its start to a rebuild so). The running file itself is still there.
  if (rc != 0 && executable != running_file) rc = spawn(running_file);
  if (rc != 0) throw_errno(rc, "posix_spawn(" + executable + ")");
  spawned out;
  out.pid = pid;
  out.channel_fd = master_end.release();
  out.rings = std::move(rings);
  return out;
}

std::optional<int> take_channel_from_environment() {
  if (std::getenv(channel_fd_env) == nullptr) return std::nullopt;
  return take_inherited_fd(channel_fd_env, S_IFSOCK, "a socket");
}

std::unique_ptr<transport::shm_channel> take_channel_rings_from_environment() {
  if (std::getenv(channel_rings_fd_env) == nullptr) return nullptr;
  transport::shm_channel_fds fds;
  // Owned as soon as taken, so that a refusal closes them; never one fd twice.
  const auto take = [&fds](unique_fd& into, const char* variable, mode_t type, const char* what) {
    const int fd = take_inherited_fd(variable, type, what);
    for (const unique_fd* taken : {&fds.memory, &fds.doorbell, &fds.peer_doorbell})
      if (taken->get() == fd)
        throw std::runtime_error(std::string(variable) + " names fd " + std::to_string(fd) +
                                 ", which another channel variable names too");
    into.reset(fd);
  };
  take(fds.memory, channel_rings_fd_env, S_IFREG, "a memory file");
  take(fds.doorbell, channel_doorbell_fd_env, S_IFIFO, "a pipe");
  take(fds.peer_doorbell, channel_master_doorbell_fd_env, S_IFIFO, "a pipe");
  try {
    return transport::shm_channel::open(std::move(fds),
                                        {channel_doorbell_fd_env, channel_master_doorbell_fd_env});
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(std::string(e.what()) + " (not started by a galaxies master?)");
  }
}

}  // namespace galaxies::process
