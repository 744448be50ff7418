#include "store_server/store_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace galaxies::stores {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// A loaded 2-core machine starts etcd in seconds, not the ~0.75 s seen on an idle one.
constexpr auto ready_deadline = 30s;
constexpr auto probe_timeout = 500ms;
constexpr auto probe_interval = 20ms;  // polling: a starting server signals readiness to nobody
constexpr auto stop_grace = 10s;
constexpr auto kill_deadline = 5s;
constexpr int start_attempts = 5;

// etcd fsyncs its log on every write: in tmpfs that costs nothing, so a busy disk (other builds
// on the same machine) cannot stall the store and turn into a slow-registry false failure.
std::filesystem::path temp_base() {
  struct stat st {};
  if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0)
    return "/dev/shm";
  const char* tmp = std::getenv("TMPDIR");
  if (tmp && tmp[0] == '/') return tmp;
  return "/tmp";
}

std::filesystem::path make_temp_dir(const std::string& name) {
  std::string pattern = (temp_base() / ("gx-" + name + "-XXXXXX")).string();
  if (!::mkdtemp(pattern.data()))
    throw std::system_error(errno, std::system_category(), "mkdtemp " + pattern);
  return pattern;
}

std::uint16_t ephemeral_low() {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  unsigned low = 0, high = 0;
  if (range >> low >> high && low > 1024 && low <= 65535) return static_cast<std::uint16_t>(low);
  return 32768;  // the kernel's default
}

sockaddr_in ipv4(in_addr address, std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr = address;
  addr.sin_port = htons(port);
  return addr;
}

in_addr loopback() {
  in_addr a{};
  a.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// `text` as an IPv4 address; throws std::invalid_argument when it is none.
in_addr parse_ipv4(const std::string& text) {
  in_addr a{};
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1)
    throw std::invalid_argument("not an IPv4 address: '" + text + "'");
  return a;
}

// Binds `fd` to address:port (0 = any) as a server would, with SO_REUSEADDR; the bound port, or 0.
std::uint16_t try_bind(const unique_fd& fd, in_addr address, std::uint16_t port) {
  if (fd.get() < 0) return 0;
  const int on = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in addr = ipv4(address, port);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return 0;
  socklen_t len = sizeof addr;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

int remaining_ms(clock::time_point until) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

bool wait_fd(int fd, short events, clock::time_point until) {
  while (true) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(until));
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

// A port on `address` that nothing is bound to right now, chosen at random below the kernel's
// ephemeral range (see free_loopback_port); `make_socket` opens a socket where the server runs.
template <class MakeSocket>
std::uint16_t pick_free_port(in_addr address, MakeSocket make_socket) {
  const std::uint16_t high = ephemeral_low();
  // Well above the well-known ports, below where the kernel picks source ports.
  const std::uint16_t low = high > 12000 ? 10000 : 1025;
  if (high > low) {
    static thread_local std::mt19937 random(std::random_device{}());
    std::uniform_int_distribution<int> pick(low, high - 1);
    for (int i = 0; i < 200; ++i) {
      const auto port = static_cast<std::uint16_t>(pick(random));
      if (try_bind(make_socket(), address, port) == port) return port;
    }
  }
  // A tuned machine with no room below the ephemeral range: let the kernel choose.
  if (const auto port = try_bind(make_socket(), address, 0)) return port;
  char text[INET_ADDRSTRLEN] = "?";
  ::inet_ntop(AF_INET, &address, text, sizeof text);
  throw std::runtime_error(std::string("no free TCP port on ") + text);
}

// One request/response over `fd` (a fresh non-blocking socket) to address:port, bounded by
// `timeout`: sends `request`, then reads until `complete(reply)` holds, the peer closes, or time
// runs out. The reply so far.
std::string request_reply(unique_fd fd, in_addr address, std::uint16_t port,
                          const std::string& request, std::chrono::milliseconds timeout,
                          const std::function<bool(const std::string&)>& complete) {
  const auto until = clock::now() + timeout;
  if (fd.get() < 0) return {};
  sockaddr_in addr = ipv4(address, port);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) return {};
    if (!wait_fd(fd.get(), POLLOUT, until)) return {};
    int error = 0;
    socklen_t len = sizeof error;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) return {};
  }
  for (std::size_t done = 0; done < request.size();) {
    const ssize_t n = ::send(fd.get(), request.data() + done, request.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      if (!wait_fd(fd.get(), POLLOUT, until)) return {};
    } else {
      return {};
    }
  }
  std::string reply;
  char buf[4096];
  while (!complete(reply)) {
    if (!wait_fd(fd.get(), POLLIN, until)) break;
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
  }
  return reply;
}

bool contains_ci(std::string text, std::string needle) {
  const auto lower = [](std::string& s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  };
  lower(text);
  lower(needle);
  return text.find(needle) != std::string::npos;
}

std::string read_tail(const std::filesystem::path& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  const std::streamoff size = in.tellg();
  const std::streamoff from = size > static_cast<std::streamoff>(max_bytes)
                                  ? size - static_cast<std::streamoff>(max_bytes)
                                  : 0;
  in.seekg(from);
  std::string text(static_cast<std::size_t>(size - from), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  return text;
}

std::uintmax_t file_size_or_zero(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

}  // namespace

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t at = 0;
  while (at <= dirs.size()) {
    const auto end = std::min(dirs.find(':', at), dirs.size());
    std::string dir = dirs.substr(at, end - at);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    at = end + 1;
  }
  return {};
}

std::uint16_t free_loopback_port() {
  return pick_free_port(loopback(),
                        [] { return unique_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)); });
}

// ---- store_server ----------------------------------------------------------------------------

store_server::store_server(std::string name, std::string scheme, std::size_t ports,
                           store_settings settings)
    : ports_(ports, 0),
      name_(std::move(name)),
      binary_(find_on_path(name_)),
      scheme_(std::move(scheme)),
      address_(settings.address.empty() ? "127.0.0.1" : settings.address),
      check_interrupt_(std::move(settings.check_interrupt)) {
  if (binary_.empty()) throw std::runtime_error(name_ + " is not installed (not on PATH)");
  parse_ipv4(address_);  // a bad address fails here, not in the middle of a start
  if (!settings.network_namespace.empty()) {
    netns_.reset(::open(settings.network_namespace.c_str(), O_RDONLY | O_CLOEXEC));
    if (netns_.get() < 0)
      throw std::system_error(errno, std::system_category(),
                              "open network namespace " + settings.network_namespace.string());
  }
  dir_ = make_temp_dir(scheme_);
  log_path_ = settings.log_path.empty() ? dir_ / "server.log" : settings.log_path;
}

store_server::~store_server() {
  stop();
  remove_dir();
}

void store_server::remove_dir() {
  // For a post-mortem the server's log and data stay where they were.
  if (keep_dir_ || std::getenv("GALAXIES_TEST_KEEP_DIRS")) {
    std::fprintf(stderr, "[store_server] kept %s\n", dir_.c_str());
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

bool store_server::on_path(const std::string& name) {
  return !find_on_path(name).empty();
}

std::string store_server::log_tail(std::size_t max_bytes) const {
  return read_tail(log_path(), max_bytes);
}

unique_fd store_server::open_socket(int flags) const {
  if (netns_.get() < 0) return unique_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0));
  // A socket stays in the namespace it was made in: a thread of its own joins the server's
  // namespace and makes it, and every other thread keeps the starter's.
  int fd = -1;
  int setns_error = 0;
  std::thread maker([&] {
    if (::setns(netns_.get(), CLONE_NEWNET) != 0)
      setns_error = errno;
    else
      fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
  });
  maker.join();
  if (setns_error != 0)
    throw std::system_error(setns_error, std::system_category(), name_ + ": setns");
  return unique_fd(fd);  // -1 when socket() failed, as without a namespace
}

std::uint16_t store_server::free_port() const {
  return pick_free_port(parse_ipv4(address_), [this] { return open_socket(0); });
}

std::string store_server::exchange(const std::string& request, std::chrono::milliseconds timeout,
                                   const std::function<bool(const std::string&)>& complete) const {
  return request_reply(open_socket(SOCK_NONBLOCK), parse_ipv4(address_), port(), request, timeout,
                       complete);
}

void store_server::fail(const std::string& what) {
  kill();
  throw std::runtime_error(name_ + ": " + what + "\n---- " + log_path().string() +
                           " (tail) ----\n" + log_tail());
}

void store_server::start() {
  try {
    start_on_free_ports();
  } catch (...) {
    // No destructor runs for an object whose constructor threw: clean up here.
    kill();
    remove_dir();
    throw;
  }
}

void store_server::start_on_free_ports() {
  for (int attempt = 1;; ++attempt) {
    for (auto& port : ports_) {
      do {
        port = free_port();
      } while (std::count(ports_.begin(), ports_.end(), port) > 1);
    }
    url_ = scheme_ + "://" + address_ + ":" + std::to_string(port());
    const auto log_before = file_size_or_zero(log_path());
    if (launch() == launch_result::ready) return;
    // Another process may have taken a port between our check and the server's bind.
    const auto log = read_tail(log_path(), file_size_or_zero(log_path()) - log_before);
    if (!contains_ci(log, "address already in use")) fail("exited while starting");
    if (attempt == start_attempts) fail("every port tried was taken");
  }
}

void store_server::restart(bool keep_data) {
  stop();
  if (!keep_data) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_ / "data", ignored);
  }
  if (launch() != launch_result::ready) fail("exited while restarting on the same ports");
}

store_server::launch_result store_server::launch() {
  const std::string& binary = binary_;
  const auto args = command();
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  // Everything the child needs is prepared here: between fork and exec in a threaded process
  // only async-signal-safe calls are allowed (no allocation, no PATH search).
  unique_fd log(::open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (log.get() < 0) throw std::system_error(errno, std::system_category(), "open server log");
  const std::string banner = "---- [store_server] starting " + binary + " ----\n";
  [[maybe_unused]] auto written = ::write(log.get(), banner.data(), banner.size());
  unique_fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null.get() < 0) throw std::system_error(errno, std::system_category(), "open /dev/null");
  // Reports a failed setns or exec (which, and errno): EOF means exec succeeded (the write end is
  // close-on-exec).
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0)
    throw std::system_error(errno, std::system_category(), "pipe2");
  unique_fd exec_read(exec_pipe[0]), exec_write(exec_pipe[1]);
  const pid_t parent = ::getpid();
  const int netns = netns_.get();

  const pid_t child = ::fork();
  if (child < 0) throw std::system_error(errno, std::system_category(), "fork");
  if (child == 0) {
    // The server must never outlive the test, even when the test crashes or is killed.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    // Its own process group: a Ctrl-C in the terminal reaches only its starter, which stops it
    // in its own time (the demo: after the hosts that use it).
    ::setpgid(0, 0);
    ::dup2(null.get(), STDIN_FILENO);
    ::dup2(log.get(), STDOUT_FILENO);
    ::dup2(log.get(), STDERR_FILENO);
    // Nothing else the test holds (sockets of the registries under test, Asio's fds opened
    // without O_CLOEXEC) may leak into the server and outlive a registry.
    if (::close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = STDERR_FILENO + 1; fd < 65536; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    // Ignored signals and the blocked mask survive exec; the server gets a clean slate.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // In the child, not through `ip netns exec`: the PID stays the server's own.
    int failed[2] = {0, 0};
    if (netns >= 0 && ::setns(netns, CLONE_NEWNET) != 0) {
      failed[1] = errno;
    } else {
      ::execve(binary.c_str(), argv.data(), environ);
      failed[0] = 1;
      failed[1] = errno;
    }
    [[maybe_unused]] auto n = ::write(exec_write.get(), failed, sizeof failed);
    ::_exit(127);
  }
  exec_write.reset();
  pid_ = child;
  paused_ = false;
  wait_status_.reset();
  int failed[2] = {0, 0};
  ssize_t got;
  do {
    got = ::read(exec_read.get(), failed, sizeof failed);
  } while (got < 0 && errno == EINTR);
  if (got == sizeof failed) {
    wait_reaped(kill_deadline);
    throw std::system_error(failed[1], std::system_category(),
                            failed[0] ? "exec " + binary : "setns of " + binary);
  }

  const auto started = clock::now();
  const auto until = started + ready_deadline;
  while (true) {
    if (check_interrupt_) check_interrupt_();
    if (wait_reaped(0ms)) return launch_result::exited;
    if (probe(probe_timeout)) {
      // The child must still be the one answering, not a stranger on a port it failed to bind.
      if (wait_reaped(0ms)) return launch_result::exited;
      ready_after_ = clock::now() - started;
      return launch_result::ready;
    }
    if (clock::now() >= until) {
      kill();
      fail("not ready within " + std::to_string(ready_deadline.count()) + " s");
    }
    std::this_thread::sleep_for(probe_interval);
  }
}

bool store_server::wait_reaped(std::chrono::milliseconds deadline) {
  if (pid_ <= 0) return true;
  const auto until = clock::now() + deadline;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      if (r == pid_) wait_status_ = status;
      pid_ = -1;
      paused_ = false;
      return true;
    }
    if (clock::now() >= until) return false;
    std::this_thread::sleep_for(5ms);  // polling a child: no fd to wait on without pidfd
  }
}

bool store_server::exited() {
  return wait_reaped(0ms);
}

bool store_server::stop() {
  if (pid_ <= 0) return true;
  ::kill(pid_, SIGTERM);
  ::kill(pid_, SIGCONT);  // a stopped process would never handle SIGTERM
  if (wait_reaped(stop_grace)) return true;
  std::fprintf(stderr, "[store_server] %s (pid %d) ignored SIGTERM for %lld s: SIGKILL\n",
               name_.c_str(), static_cast<int>(pid_), static_cast<long long>(stop_grace.count()));
  kill();
  return false;
}

void store_server::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  if (!wait_reaped(kill_deadline)) {
    std::fprintf(stderr, "[store_server] %s (pid %d) survived SIGKILL for %lld s\n", name_.c_str(),
                 static_cast<int>(pid_), static_cast<long long>(kill_deadline.count()));
  }
}

// kill() returns before every thread of the server has stopped (or resumed): a request sent
// right after SIGSTOP may still be answered. The kernel tells the parent once the whole process
// has changed state, so wait for that.
bool store_server::wait_state(int options, std::chrono::milliseconds deadline) {
  const auto until = clock::now() + deadline;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG | options);
    if (r == pid_ && (WIFEXITED(status) || WIFSIGNALED(status))) {
      wait_status_ = status;
      pid_ = -1;
      paused_ = false;
      return false;
    }
    if (r == pid_) return true;
    if (r < 0 && errno != EINTR) return false;
    if (clock::now() >= until) return false;
    std::this_thread::sleep_for(1ms);
  }
}

void store_server::pause() {
  if (pid_ <= 0 || paused_ || ::kill(pid_, SIGSTOP) != 0) return;
  paused_ = true;
  if (!wait_state(WUNTRACED, kill_deadline) && pid_ > 0)
    std::fprintf(stderr, "[store_server] %s (pid %d) not seen stopping\n", name_.c_str(), pid_);
}

void store_server::resume() {
  if (pid_ <= 0 || !paused_ || ::kill(pid_, SIGCONT) != 0) return;
  paused_ = false;
  if (!wait_state(WCONTINUED, kill_deadline) && pid_ > 0)
    std::fprintf(stderr, "[store_server] %s (pid %d) not seen resuming\n", name_.c_str(), pid_);
}

// ---- etcd ------------------------------------------------------------------------------------

etcd_server::etcd_server(store_settings settings)
    : store_server("etcd", "etcd", 2, std::move(settings)) {
  start();
}

std::vector<std::string> etcd_server::command() const {
  const std::string client = "http://" + address() + ":" + std::to_string(port());
  const std::string peer = "http://" + address() + ":" + std::to_string(peer_port());
  return {"--name", "default", "--data-dir", (dir_ / "data").string(), "--listen-client-urls",
          client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
          "--initial-advertise-peer-urls", peer, "--initial-cluster", "default=" + peer,
          // One member elects itself within an election timeout: ready in well under a second.
          "--heartbeat-interval", "10", "--election-timeout", "100", "--logger", "zap"};
}

bool etcd_server::probe(std::chrono::milliseconds timeout) const {
  const auto reply =
      exchange("GET /health HTTP/1.1\r\nHost: " + address() + "\r\nConnection: close\r\n\r\n",
               timeout, [](const std::string& r) { return r.find('}') != std::string::npos; });
  // /health says true only once the member has a leader and serves reads.
  return reply.starts_with("HTTP/1.1 200") &&
         reply.find("\"health\":\"true\"") != std::string::npos;
}

// ---- redis -----------------------------------------------------------------------------------

redis_server::redis_server(std::vector<std::string> extra_args, store_settings settings)
    : store_server("redis-server", "redis", 1, std::move(settings)),
      extra_args_(std::move(extra_args)) {
  start();
}

std::vector<std::string> redis_server::command() const {
  std::vector<std::string> args{
      "--bind",       address(), "--port", std::to_string(port()), "--save", "",
      "--appendonly", "no",      "--dir",  dir_.string(),          "--hz",   "100"};
  // Without a password Redis answers only loopback clients unless told otherwise; an address of
  // a test network is reachable only inside that network.
  if (!on_loopback()) args.insert(args.end(), {"--protected-mode", "no"});
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  return args;
}

bool redis_server::probe(std::chrono::milliseconds timeout) const {
  const auto reply = exchange("PING\r\n", timeout, [](const std::string& r) {
    return r.find("\r\n") != std::string::npos;
  });
  return reply == "+PONG\r\n";
}

}  // namespace galaxies::stores
