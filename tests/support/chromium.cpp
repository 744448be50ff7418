#include "support/chromium.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#include "support/netns.hpp"

extern char** environ;

namespace galaxies::test {
namespace {

using clock = std::chrono::steady_clock;

// A browser that ignores SIGTERM this long (it saves its profile on the way out) is killed.
constexpr auto stop_grace = 5s;
// A reply this large is a runaway page, not a test's answer.
constexpr std::size_t max_message_bytes = 64 << 20;

[[noreturn]] void fail(const std::string& what) {
  throw chromium_error(what);
}

[[noreturn]] void fail_errno(const std::string& what) {
  fail(what + ": " + std::strerror(errno));
}

// Above the standard descriptors and the two the browser wants: no dup2 below can clobber them.
int high_cloexec(int fd) {
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return moved;
}

int milliseconds_until(clock::time_point until) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 60'000));
}

// Waits until `fd` is ready for `events`; false past `until`.
bool wait_fd(int fd, short events, clock::time_point until) {
  while (true) {
    pollfd p{fd, events, 0};
    const int ready = ::poll(&p, 1, milliseconds_until(until));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) fail_errno("poll");
    if (ready == 0 && clock::now() >= until) return false;
  }
}

}  // namespace

std::string chromium::find_binary() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(std::string(path ? path : "") + ":/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/chromium";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

chromium::chromium(const std::filesystem::path& dir) : log_path_(dir / "chromium.log") {
  if (const auto problem = netns::isolation_problem(); !problem.empty())
    fail("chromium runs only in a network namespace of the test's own: " + problem);
  const std::string binary = find_binary();
  if (binary.empty()) fail("chromium is not installed");

  int commands[2];  // we write [1]; the browser reads fd 3
  int replies[2];   // the browser writes fd 4; we read [0]
  if (::pipe2(commands, O_CLOEXEC) != 0) fail_errno("pipe2");
  if (::pipe2(replies, O_CLOEXEC) != 0) {
    ::close(commands[0]);
    ::close(commands[1]);
    fail_errno("pipe2");
  }
  for (int* fd : {&commands[0], &commands[1], &replies[0], &replies[1]}) *fd = high_cloexec(*fd);
  to_browser_ = commands[1];
  from_browser_ = replies[0];
  // Ours only (the browser's ends are other open files): a browser that stops reading must not
  // block a test past its deadline.
  ::fcntl(to_browser_, F_SETFL, ::fcntl(to_browser_, F_GETFL) | O_NONBLOCK);
  ::fcntl(from_browser_, F_SETFL, ::fcntl(from_browser_, F_GETFL) | O_NONBLOCK);

  const std::string profile = "--user-data-dir=" + (dir / "chromium-profile").string();
  std::vector<std::string> argv{binary,
                                "--headless",
                                "--no-sandbox",  // root, in a namespace of the test's own
                                "--disable-gpu",
                                "--remote-debugging-pipe",
                                "--no-first-run",
                                "--disable-background-networking",
                                "--disable-component-update",
                                "--disable-sync",
                                "--disable-default-apps",
                                profile,
                                "about:blank"};
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_adddup2(&actions, commands[0], 3);
  posix_spawn_file_actions_adddup2(&actions, replies[1], 4);
  posix_spawn_file_actions_addclosefrom_np(&actions, 5);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const int error = ::posix_spawn(&pid_, binary.c_str(), &actions, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  ::close(commands[0]);
  ::close(replies[1]);
  if (error != 0) {
    pid_ = -1;
    stop();
    fail(std::string("cannot start chromium: ") + std::strerror(error));
  }
}

chromium::~chromium() {
  stop();
}

void chromium::stop() noexcept {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    const auto until = clock::now() + stop_grace;
    bool reaped = false;
    while (!reaped) {
      const pid_t r = ::waitpid(pid_, nullptr, WNOHANG);
      reaped = r == pid_ || (r < 0 && errno == ECHILD);
      if (reaped) break;
      if (clock::now() >= until) {
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
        break;
      }
      std::this_thread::sleep_for(10ms);  // a child: no fd to wait on without pidfd
    }
    pid_ = -1;
  }
  for (int* fd : {&to_browser_, &from_browser_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

std::string chromium::log() const {
  std::ifstream in(log_path_, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  constexpr std::size_t keep = 64 << 10;
  return text.size() > keep ? text.substr(text.size() - keep) : text;
}

void chromium::send(const std::string& message, clock::time_point until) {
  // A browser gone mid-write must fail the call, not kill the test with SIGPIPE: the signal is
  // blocked on this thread for the write, and taken back if it was raised.
  sigset_t pipe_only, previous;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_only, &previous);
  const bool was_blocked = sigismember(&previous, SIGPIPE) == 1;
  std::string_view left(message.data(), message.size() + 1);  // with its NUL terminator
  int error = 0;
  while (!left.empty() && error == 0) {
    const ssize_t n = ::write(to_browser_, left.data(), left.size());
    if (n > 0) {
      left.remove_prefix(static_cast<std::size_t>(n));
    } else if (errno == EAGAIN) {
      if (!wait_fd(to_browser_, POLLOUT, until)) error = ETIMEDOUT;
    } else if (errno != EINTR) {
      error = errno;
    }
  }
  if (!was_blocked) {
    const timespec zero{};
    while (::sigtimedwait(&pipe_only, nullptr, &zero) == SIGPIPE) {
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }
  if (error != 0)
    fail(std::string("cannot send to chromium: ") + std::strerror(error) + "; log:\n" + log());
}

std::string chromium::receive(clock::time_point until) {
  while (true) {
    if (const auto end = buffer_.find('\0'); end != std::string::npos) {
      std::string message = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      return message;
    }
    if (buffer_.size() > max_message_bytes) fail("chromium sent a message past 64 MiB");
    if (!wait_fd(from_browser_, POLLIN, until))
      fail("chromium did not answer in time; log:\n" + log());
    char chunk[65536];
    const ssize_t n = ::read(from_browser_, chunk, sizeof chunk);
    if (n > 0)
      buffer_.append(chunk, static_cast<std::size_t>(n));
    else if (n == 0)
      fail("chromium closed its pipe (exited?); log:\n" + log());
    else if (errno != EAGAIN && errno != EINTR)
      fail_errno("read from chromium");
  }
}

nlohmann::json chromium::call(const std::string& method, const nlohmann::json& params,
                              const std::string& session, std::chrono::milliseconds timeout) {
  const auto until = clock::now() + timeout;
  const long id = next_id_++;
  nlohmann::json command{{"id", id}, {"method", method}, {"params", params}};
  if (!session.empty()) command["sessionId"] = session;
  send(command.dump(), until);
  while (true) {
    const auto reply = nlohmann::json::parse(receive(until), nullptr, /*allow_exceptions=*/false);
    if (reply.is_discarded()) fail("chromium sent a message that is not JSON");
    // Events (no id) and replies to calls abandoned on a timeout are not ours.
    if (!reply.is_object() || reply.value("id", -1L) != id) continue;
    if (const auto e = reply.find("error"); e != reply.end())
      fail(method + " failed: " + e->dump());
    return reply.value("result", nlohmann::json::object());
  }
}

std::string chromium::open(const std::string& url, std::chrono::milliseconds timeout) {
  const auto until = clock::now() + timeout;
  const auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
  };
  const auto target = call("Target.createTarget", {{"url", url}}, {}, left());
  const auto attached =
      call("Target.attachToTarget", {{"targetId", target.value("targetId", "")}, {"flatten", true}},
           {}, left());
  const std::string session = attached.value("sessionId", "");
  if (session.empty()) fail("Target.attachToTarget gave no sessionId: " + attached.dump());
  return session;
}

nlohmann::json chromium::evaluate(const std::string& session, const std::string& expression,
                                  std::chrono::milliseconds timeout) {
  const auto reply = call("Runtime.evaluate", {{"expression", expression}, {"returnByValue", true}},
                          session, timeout);
  if (const auto e = reply.find("exceptionDetails"); e != reply.end()) {
    const auto& exception = e->value("exception", nlohmann::json::object());
    throw page_script_error(exception.value("description", e->value("text", e->dump())));
  }
  const auto& result = reply.value("result", nlohmann::json::object());
  return result.value("value", nlohmann::json());
}

}  // namespace galaxies::test
