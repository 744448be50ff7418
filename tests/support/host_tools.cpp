#include "support/host_tools.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>

#include "galaxies/ids.hpp"
#include "process/proc_stat.hpp"
#include "wire/control.hpp"
#include "wire/frame.hpp"

extern char** environ;

namespace galaxies::test::tools {
namespace {

using clock = std::chrono::steady_clock;

int remaining_ms(clock::time_point until) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits until fd is ready for `events` or `until` passes.
bool wait_for(int fd, short events, clock::time_point until) {
  while (true) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(until));
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

}  // namespace

pid_t spawn(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd,
            const std::vector<std::string>& environment) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto overridden = std::any_of(environment.begin(), environment.end(), [&](auto& set) {
      return entry.substr(0, entry.find('=') + 1) == set.substr(0, set.find('=') + 1);
    });
    if (!overridden) env.push_back(*e);
  }
  for (const auto& e : environment) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  // Belt and braces beside O_CLOEXEC: Asio and the library open sockets without it, and a host
  // holding a test's socket would keep it open past the test.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  const int error = ::posix_spawn(&pid, args[0], &actions, &attr, args.data(), env.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) throw std::system_error(error, std::system_category(), "posix_spawn " + argv[0]);
  return pid;
}

std::uint64_t start_time(pid_t pid) {
  const auto stat = process::read_proc_stat(pid);
  return stat ? stat->started_ticks : 0;
}

char state(pid_t pid) {
  const auto stat = process::read_proc_stat(pid);
  return stat ? stat->state : 0;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> children;
  DIR* proc = ::opendir("/proc");  // glibc opens it O_CLOEXEC
  if (!proc) return children;
  while (const dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    const auto stat = process::read_proc_stat(static_cast<pid_t>(pid));
    if (stat && stat->parent == parent) children.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return children;
}

nlohmann::json query_status(const std::string& unix_path, const std::string& cluster,
                            std::chrono::milliseconds timeout) {
  const auto until = clock::now() + timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (unix_path.size() >= sizeof addr.sun_path) return nullptr;
  std::memcpy(addr.sun_path, unix_path.data(), unix_path.size());
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return nullptr;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EAGAIN && errno != EINPROGRESS) return nullptr;
    if (!wait_for(fd.get(), POLLOUT, until)) return nullptr;
    int error = 0;
    socklen_t len = sizeof error;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0)
      return nullptr;
  }

  std::vector<std::byte> out;
  wire::hello h;
  h.role = wire::role::observer;
  h.sender = uuid::random();
  h.pid = static_cast<std::uint32_t>(::getpid());
  h.cluster = cluster;
  wire::append_hello(out, h);
  wire::append_status_request(out);
  for (std::size_t done = 0; done < out.size();) {
    const ssize_t n = ::send(fd.get(), out.data() + done, out.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      if (!wait_for(fd.get(), POLLOUT, until)) return nullptr;
    } else {
      return nullptr;
    }
  }

  const wire::frame_parser parser;
  std::vector<std::byte> in;
  std::byte chunk[65536];
  while (true) {
    const auto r = parser.parse(in);
    if (r.state == wire::parse_result::status::error) return nullptr;
    if (r.state == wire::parse_result::status::frame) {
      const auto type = r.frame.header.type;
      if (type == wire::frame_type::status_reply) {
        auto doc = nlohmann::json::parse(wire::status_json(r.frame), nullptr, false);
        if (doc.is_discarded()) return nullptr;
        return doc;
      }
      if (type != wire::frame_type::welcome) return nullptr;  // refuse, goodbye
      in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(r.frame.header.total()));
      continue;
    }
    if (!wait_for(fd.get(), POLLIN, until)) return nullptr;
    const ssize_t n = ::recv(fd.get(), chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return nullptr;
    in.insert(in.end(), chunk, chunk + n);
  }
}

}  // namespace galaxies::test::tools
