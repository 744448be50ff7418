#include "registry_store.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "director_helpers.hpp"
#include "host_process.hpp"

extern char** environ;

namespace director {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// A loaded 2-core machine starts etcd in seconds, not the ~1 s it takes on an idle one.
constexpr double ready_deadline_s = 30;
constexpr auto probe_timeout = 500ms;
constexpr auto probe_interval = 50ms;  // a starting server tells nobody it is ready: we ask
constexpr double stop_grace_s = 10;
constexpr int start_attempts = 5;

struct fd_closer {
  int fd;
  ~fd_closer() {
    if (fd >= 0) ::close(fd);
  }
};

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t at = 0; at <= dirs.size();) {
    const auto end = std::min(dirs.find(':', at), dirs.size());
    const std::string dir = end > at ? dirs.substr(at, end - at) : ".";
    const std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    at = end + 1;
  }
  return {};
}

std::string make_data_dir(const std::string& work_dir, const std::string& name) {
  std::string base = work_dir;
  struct stat st {};
  if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0)
    base = "/dev/shm";
  std::string templ = base + "/galaxies-demo-" + name + ".XXXXXX";
  if (!::mkdtemp(templ.data()))
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + templ);
  return templ;
}

// Binds 127.0.0.1:port (0: any) as a server would; the bound port, or 0.
std::uint16_t try_bind(std::uint16_t port) {
  fd_closer s{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (s.fd < 0) return 0;
  const int on = 1;
  ::setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::bind(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return 0;
  socklen_t len = sizeof addr;
  if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

// A free port below the kernel's ephemeral range, where no outgoing connection takes it; in a
// tuned range with no room below, whatever the kernel picks.
std::uint16_t free_loopback_port() {
  unsigned low = 0, high = 0;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  if (!(range >> low >> high) || low <= 1024 || low > 65535) low = 32768;
  const unsigned from = low > 12000 ? 10000 : 1025;
  if (low > from) {
    static std::mt19937 random(std::random_device{}());
    std::uniform_int_distribution<unsigned> pick(from, low - 1);
    for (int i = 0; i < 200; ++i) {
      const auto port = static_cast<std::uint16_t>(pick(random));
      if (try_bind(port) == port) return port;
    }
  }
  if (const auto port = try_bind(0)) return port;
  throw std::runtime_error("no free TCP port on 127.0.0.1");
}

bool wait_fd(int fd, short events, clock::time_point until) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

// One request over a fresh loopback connection: sends `request`, reads until the reply holds
// `end`, the server closes, or the time is up. The reply so far.
std::string exchange(std::uint16_t port, const std::string& request, const std::string& end) {
  const auto until = clock::now() + probe_timeout;
  fd_closer s{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (s.fd < 0) return {};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS || !wait_fd(s.fd, POLLOUT, until)) return {};
    int error = 0;
    socklen_t len = sizeof error;
    if (::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) return {};
  }
  for (std::size_t done = 0; done < request.size();) {
    const ssize_t n = ::send(s.fd, request.data() + done, request.size() - done, MSG_NOSIGNAL);
    if (n > 0)
      done += static_cast<std::size_t>(n);
    else if (n < 0 && (errno == EINTR || errno == EAGAIN))
      wait_fd(s.fd, POLLOUT, until);
    else
      return {};
    if (clock::now() >= until) return {};
  }
  std::string reply;
  char buf[4096];
  while (reply.find(end) == std::string::npos && wait_fd(s.fd, POLLIN, until)) {
    const ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
  }
  return reply;
}

}  // namespace

registry_store::registry_store(kind k, const std::string& work_dir,
                               const std::function<void()>& check_interrupt)
    : kind_(k), program_(k == kind::etcd ? "etcd" : "redis-server") {
  binary_ = find_on_path(program_);
  if (binary_.empty())
    throw std::runtime_error(program_ + " is not installed (not on PATH); scripts/setup.sh " +
                             "installs it (Debian package " +
                             (k == kind::etcd ? "etcd-server" : "redis-server") + ")");
  log_path_ = work_dir + "/" + program_ + ".log";
  data_dir_ = make_data_dir(work_dir, program_);
  try {
    for (int attempt = 1;; ++attempt) {
      client_port_ = free_loopback_port();
      do {
        peer_port_ = k == kind::etcd ? free_loopback_port() : 0;
      } while (peer_port_ == client_port_);
      url_ = (k == kind::etcd ? "etcd://127.0.0.1:" : "redis://127.0.0.1:") +
             std::to_string(client_port_);
      if (launch(check_interrupt) == launch_result::ready) return;
      // Another process took a port between our check and the server's bind: new ports.
      if (attempt == start_attempts)
        throw std::runtime_error(failure("every free port tried was taken first"));
    }
  } catch (...) {
    // No destructor runs for an object whose constructor threw: clean up here.
    stop();
    std::error_code ignored;
    std::filesystem::remove_all(data_dir_, ignored);
    throw;
  }
}

registry_store::~registry_store() {
  stop();
  if (!keep_data_) {
    std::error_code ignored;
    std::filesystem::remove_all(data_dir_, ignored);
  }
}

registry_store::launch_result registry_store::launch(const std::function<void()>& check_interrupt) {
  const std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
  const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  std::vector<std::string> argv{binary_};
  if (kind_ == kind::etcd) {
    // One member elects itself within an election timeout: ready in about a second.
    argv.insert(argv.end(), {"--name",
                             "default",
                             "--data-dir",
                             data_dir_ + "/data",
                             "--listen-client-urls",
                             client,
                             "--advertise-client-urls",
                             client,
                             "--listen-peer-urls",
                             peer,
                             "--initial-advertise-peer-urls",
                             peer,
                             "--initial-cluster",
                             "default=" + peer,
                             "--heartbeat-interval",
                             "10",
                             "--election-timeout",
                             "100",
                             "--logger",
                             "zap"});
  } else {
    argv.insert(argv.end(), {"--bind", "127.0.0.1", "--port", std::to_string(client_port_),
                             "--save", "", "--appendonly", "no", "--dir", data_dir_});
  }
  // A start that failed (a port taken) may have left a half-made member behind: start afresh.
  std::error_code ignored;
  std::filesystem::remove_all(data_dir_ + "/data", ignored);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);

  // Everything the child needs is prepared here: after fork, only async-signal-safe calls.
  const auto log_start = std::filesystem::exists(log_path_) ? std::filesystem::file_size(log_path_)
                                                            : std::uintmax_t{0};
  fd_closer log{::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)};
  if (log.fd < 0) throw std::system_error(errno, std::generic_category(), "open " + log_path_);
  fd_closer null{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
  if (null.fd < 0) throw std::system_error(errno, std::generic_category(), "open /dev/null");
  const pid_t parent = ::getpid();

  const pid_t child = ::fork();
  if (child < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (child == 0) {
    // Its own process group: a Ctrl-C in the terminal reaches only the director, which stops the
    // hosts first and this server last. It never outlives the director, even a killed one.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null.fd, STDIN_FILENO);
    ::dup2(log.fd, STDOUT_FILENO);
    ::dup2(log.fd, STDERR_FILENO);
    ::close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC);  // e.g. the events file
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(args[0], args.data(), environ);
    const char* why = std::strerror(errno);  // to its log, where the director looks
    for (const char* part : {"cannot start ", static_cast<const char*>(args[0]), ": ", why, "\n"})
      if (::write(STDERR_FILENO, part, std::strlen(part)) < 0) break;
    ::_exit(127);
  }
  pid_ = child;
  status_.reset();

  const auto started = clock::now();
  const auto until = started + std::chrono::duration<double>(ready_deadline_s);
  for (;;) {
    check_interrupt();
    if (exited()) {
      std::ifstream in(log_path_);
      in.seekg(static_cast<std::streamoff>(log_start));
      std::string text((std::istreambuf_iterator<char>(in)), {});
      std::transform(text.begin(), text.end(), text.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (text.find("address already in use") != std::string::npos)
        return launch_result::port_taken;
      throw std::runtime_error(
          failure("exited while starting (" + describe_wait_status(wait_status()) + ")"));
    }
    // The answer must come from our child, not from a stranger on a port it failed to bind.
    if (probe() && !exited()) {
      ready_after_s_ = std::chrono::duration<double>(clock::now() - started).count();
      return launch_result::ready;
    }
    if (clock::now() >= until) {
      stop();
      throw std::runtime_error(
          failure(std::string("did not answer ") +
                  (kind_ == kind::etcd ? "GET /health with health true" : "PING with PONG") +
                  " within " + std::to_string(static_cast<int>(ready_deadline_s)) + " s"));
    }
    std::this_thread::sleep_for(probe_interval);
  }
}

std::string registry_store::failure(const std::string& what) const {
  return program_ + " " + what + "; its log: " + log_path_ + "\n  the end of its log:\n" +
         tail_of_file(log_path_, 10);
}

bool registry_store::probe() const {
  if (kind_ == kind::redis) return exchange(client_port_, "PING\r\n", "\r\n") == "+PONG\r\n";
  // /health says true only once the member has a leader and serves requests.
  const auto reply = exchange(
      client_port_, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", "}");
  return reply.starts_with("HTTP/1.1 200") &&
         reply.find("\"health\":\"true\"") != std::string::npos;
}

bool registry_store::exited() {
  if (status_ || pid_ <= 0) return true;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
  return status_.has_value();
}

bool registry_store::wait_exit(double seconds) {
  const auto until = clock::now() + std::chrono::duration<double>(seconds);
  while (!exited()) {
    if (clock::now() >= until) return false;
    std::this_thread::sleep_for(10ms);  // a child has no fd to wait on without pidfd
  }
  return true;
}

bool registry_store::stop() {
  if (exited()) return true;
  ::kill(pid_, SIGTERM);
  if (wait_exit(stop_grace_s)) return true;
  ::kill(pid_, SIGKILL);
  wait_exit(stop_grace_s);
  return false;
}

}  // namespace director
