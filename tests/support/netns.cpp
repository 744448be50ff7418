#include "support/netns.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "store_server/unique_fd.hpp"

extern char** environ;

namespace galaxies::test::netns {
namespace {

using clock = std::chrono::steady_clock;
using stores::unique_fd;

// A namespace holding processes after their stop is waited for this long, then they are killed.
constexpr auto namespace_drain_deadline = 10s;
constexpr const char* netns_dir = "/run/netns";
constexpr const char* name_prefix = "gx";

std::string joined(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::system_category(), what);
}

bool pid_alive(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

// Finds `name` in PATH (and the sbin directories, which a non-login root shell may lack).
std::string find_tool(const std::string& name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin:/bin";
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

std::vector<std::string> environment_with(
    const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string_view entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    const bool replaced =
        std::any_of(extra.begin(), extra.end(), [&](const auto& kv) { return kv.first == name; });
    if (!replaced) env.emplace_back(entry);
  }
  for (const auto& [key, value] : extra) env.push_back(key + "=" + value);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& items) {
  std::vector<char*> out;
  for (auto& s : items) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

ino_t netns_inode(const char* path) {
  struct stat st {};
  if (::stat(path, &st) != 0) return 0;
  return st.st_ino;
}

}  // namespace

// ---- environment and isolation --------------------------------------------------------------

std::string environment_problem(const std::vector<std::string>& tools) {
  if (::geteuid() != 0) return "not root: network namespaces need root";
  for (const auto& tool : tools)
    if (find_tool(tool).empty()) return "'" + tool + "' is not installed";
  return {};
}

bool can_unshare() {
  const auto r = run_command({"unshare", "--net", "--", "true"}, 10s);
  return r.status == 0;
}

std::string isolation_problem() {
  const ino_t self = netns_inode("/proc/self/ns/net");
  if (self == 0) return "cannot read /proc/self/ns/net";
  if (const ino_t init = netns_inode("/proc/1/ns/net"); init != 0 && init == self)
    return "this is PID 1's network namespace";
  // The marker holds the namespace the binary was started in; it must not be this one.
  if (const char* marker = std::getenv(isolation_marker_env)) {
    unsigned long outer = 0;
    std::from_chars(marker, marker + std::strlen(marker), outer);
    if (outer == 0 || outer == self) return "this is the namespace the test was started in";
  } else {
    return std::string(isolation_marker_env) + " is not set: not re-executed under unshare";
  }
  std::ifstream dev("/proc/net/dev");
  std::string line;
  for (int n = 0; std::getline(dev, line); ++n) {
    if (n < 2) continue;  // two header lines
    const auto colon = line.find(':');
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    if (name != "lo") return "interface '" + name + "' exists besides lo";
  }
  std::ifstream route("/proc/net/route");
  for (int n = 0; std::getline(route, line); ++n) {
    if (n == 0) continue;
    std::istringstream fields(line);
    std::string iface, destination;
    fields >> iface >> destination;
    if (destination == "00000000") return "an IPv4 default route exists (" + iface + ")";
  }
  for (const char* family : {"-4", "-6"}) {
    const auto r = run_command({"ip", family, "route", "show", "default"}, 10s);
    if (r.status != 0) return std::string("ip ") + family + " route show default failed";
    if (r.output.find_first_not_of(" \n") != std::string::npos)
      return std::string("a default route exists: ") + r.output;
  }
  return {};
}

void verify_isolated() {
  const std::string problem = isolation_problem();
  if (problem.empty()) return;
  std::fprintf(stderr,
               "\n*** FAULT TESTS ABORTED: not isolated from the machine's network: %s ***\n"
               "*** Every multi-host test must run in a fresh network namespace (unshare). ***\n\n",
               problem.c_str());
  std::fflush(stderr);
  std::abort();
}

namespace {
std::string& unavailable_storage() {
  static std::string reason;
  return reason;
}
}  // namespace

void set_unavailable_reason(std::string reason) {
  unavailable_storage() = std::move(reason);
}
const std::string& unavailable_reason() {
  return unavailable_storage();
}

// ---- commands ---------------------------------------------------------------------------------

command_result run_command(const std::vector<std::string>& argv, std::chrono::milliseconds limit) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
  unique_fd read_end(fds[0]);
  unique_fd write_end(fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
  std::vector<std::string> args = argv;
  auto c_args = c_strings(args);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0].c_str(), &actions, nullptr, c_args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  command_result result;
  if (rc != 0) {
    result.output = "cannot start " + argv[0] + ": " + std::strerror(rc);
    return result;
  }
  write_end.reset();

  const auto until = clock::now() + limit;
  char buffer[4096];
  bool killed = false;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    pollfd p{read_end.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buffer, static_cast<std::size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!killed && WIFEXITED(status)) result.status = WEXITSTATUS(status);
  if (killed) result.output += "\n[killed after " + std::to_string(limit.count()) + " ms]";
  return result;
}

std::string run_checked(const std::vector<std::string>& argv, std::chrono::milliseconds limit) {
  auto r = run_command(argv, limit);
  if (r.status != 0)
    throw std::runtime_error("'" + joined(argv) + "' failed (" + std::to_string(r.status) +
                             "): " + r.output);
  return r.output;
}

double monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// ---- process ----------------------------------------------------------------------------------

std::string process::log() const {
  std::ifstream in(log_path_);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

bool process::reap(int options) {
  if (status_) return true;
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid_, &status, options)) < 0 && errno == EINTR) {
  }
  if (r == pid_) {
    status_ = status;
    return true;
  }
  if (r < 0 && errno == ECHILD) {
    status_ = -1;  // not ours any more (cannot happen for a child we did not reap)
    return true;
  }
  return false;
}

bool process::running() {
  return !reap(WNOHANG);
}

void process::signal(int sig) {
  if (!running()) return;
  ::kill(pid_, sig);  // unreaped: the pid is still ours, even as a zombie
}

std::optional<int> process::exit_status() {
  reap(WNOHANG);
  return status_;
}

bool process::wait_exit(std::chrono::milliseconds deadline) {
  const auto until = clock::now() + deadline;
  while (running()) {
    if (clock::now() >= until) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

int process::stop(std::chrono::milliseconds grace) {
  if (running()) {
    ::kill(pid_, SIGCONT);  // a stopped process cannot act on SIGTERM
    ::kill(pid_, SIGTERM);
    if (!wait_exit(grace)) {
      ::kill(pid_, SIGKILL);
      wait_exit(5s);
    }
  }
  return status_.value_or(-1);
}

// ---- test_network -----------------------------------------------------------------------------

namespace {
int next_network_number() {
  static int n = 0;
  return ++n;
}
}  // namespace

test_network::test_network(std::vector<std::string> hosts) : hosts_(std::move(hosts)) {
  if (hosts_.empty() || hosts_.size() > 200) throw std::invalid_argument("1..200 hosts");
  prefix_ = std::string(name_prefix) + std::to_string(::getpid()) + "n" +
            std::to_string(next_network_number());
  bridge_ns_ = prefix_ + "-br";
  try {
    run_checked({"ip", "netns", "add", bridge_ns_});
    created_.push_back(bridge_ns_);
    run_checked({"ip", "-n", bridge_ns_, "link", "set", "lo", "up"});
    run_checked({"ip", "-n", bridge_ns_, "link", "add", "gxbr0", "type", "bridge"});
    run_checked({"ip", "-n", bridge_ns_, "link", "set", "gxbr0", "up"});
    for (std::size_t i = 0; i < hosts_.size(); ++i) {
      const std::string ns = namespace_of(hosts_[i]);
      const std::string port = "p" + std::to_string(i);
      run_checked({"ip", "netns", "add", ns});
      created_.push_back(ns);
      run_checked({"ip", "-n", ns, "link", "set", "lo", "up"});
      run_checked({"ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
                   "netns", bridge_ns_});
      run_checked({"ip", "-n", bridge_ns_, "link", "set", port, "master", "gxbr0"});
      run_checked({"ip", "-n", bridge_ns_, "link", "set", port, "up"});
      run_checked({"ip", "-n", ns, "addr", "add", address(hosts_[i]) + "/24", "dev", "eth0"});
      run_checked({"ip", "-n", ns, "link", "set", "eth0", "up"});
    }
  } catch (...) {
    teardown();
    throw;
  }
}

test_network::~test_network() {
  teardown();
}

void test_network::teardown() noexcept {
  try {
    // Everyone at once, then each waited for: hosts stop their workers in parallel.
    for (auto& p : processes_)
      if (p->running()) {
        ::kill(p->pid(), SIGCONT);
        ::kill(p->pid(), SIGTERM);
      }
    for (auto& p : processes_) p->stop();
    processes_.clear();
    // Whatever is left inside (workers of a killed master still exiting) gets a bounded wait,
    // then SIGKILL by PID: a namespace is deleted only once empty.
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
      const auto until = clock::now() + namespace_drain_deadline;
      while (true) {
        auto r = run_command({"ip", "netns", "pids", *it}, 10s);
        std::vector<pid_t> left;
        std::istringstream in(r.output);
        for (pid_t pid; in >> pid;) left.push_back(pid);
        if (left.empty()) break;
        if (clock::now() >= until) {
          for (pid_t pid : left) {
            std::fprintf(stderr, "[netns] killing pid %d left in %s\n", pid, it->c_str());
            ::kill(pid, SIGKILL);
          }
        }
        std::this_thread::sleep_for(10ms);
        if (clock::now() >= until + 5s) {
          std::fprintf(stderr, "[netns] %s still holds processes; deleting it anyway\n",
                       it->c_str());
          break;
        }
      }
      auto r = run_command({"ip", "netns", "del", *it}, 10s);
      if (r.status != 0)
        std::fprintf(stderr, "[netns] ip netns del %s: %s\n", it->c_str(), r.output.c_str());
    }
    created_.clear();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[netns] teardown: %s\n", e.what());
  }
}

std::size_t test_network::index_of(const std::string& host) const {
  const auto it = std::find(hosts_.begin(), hosts_.end(), host);
  if (it == hosts_.end()) throw std::invalid_argument("no host '" + host + "'");
  return static_cast<std::size_t>(it - hosts_.begin());
}

std::string test_network::address(const std::string& host) const {
  return "10.77.0." + std::to_string(index_of(host) + 1);
}

std::string test_network::namespace_of(const std::string& host) const {
  index_of(host);
  return prefix_ + "-" + host;
}

std::filesystem::path test_network::namespace_file(const std::string& host) const {
  return std::filesystem::path(netns_dir) / namespace_of(host);
}

process& test_network::spawn(const std::string& host, const std::vector<std::string>& argv,
                             const std::vector<std::pair<std::string, std::string>>& env,
                             const std::filesystem::path& log_path) {
  if (argv.empty()) throw std::invalid_argument("spawn: empty argv");
  const std::string ip = find_tool("ip");
  std::vector<std::string> args{ip, "netns", "exec", namespace_of(host)};
  args.insert(args.end(), argv.begin(), argv.end());
  auto c_args = c_strings(args);
  auto env_strings = environment_with(env);
  auto c_env = c_strings(env_strings);

  unique_fd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0) throw_errno("open /dev/null");
  unique_fd log_fd(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (log_fd.get() < 0) throw_errno("open " + log_path.string());

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the test died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::dup2(null_fd.get(), 0) < 0 || ::dup2(log_fd.get(), 1) < 0 || ::dup2(log_fd.get(), 2) < 0)
      ::_exit(127);
    ::close_range(3, ~0u, 0);
    ::execve(ip.c_str(), c_args.data(), c_env.data());
    ::_exit(127);
  }
  processes_.push_back(std::make_unique<process>(pid, host + ":" + joined(argv), log_path));
  return *processes_.back();
}

std::string test_network::exec(const std::string& host, const std::vector<std::string>& argv) {
  std::vector<std::string> args{"ip", "netns", "exec", namespace_of(host)};
  args.insert(args.end(), argv.begin(), argv.end());
  return run_checked(args);
}

void test_network::link_down(const std::string& host) {
  run_checked({"ip", "-n", namespace_of(host), "link", "set", "eth0", "down"});
}

void test_network::link_up(const std::string& host) {
  run_checked({"ip", "-n", namespace_of(host), "link", "set", "eth0", "up"});
}

void test_network::partition(const std::string& a, const std::string& b) {
  exec(a, {"iptables", "-w", "-A", "INPUT", "-s", address(b), "-j", "DROP"});
  exec(a, {"iptables", "-w", "-A", "OUTPUT", "-d", address(b), "-j", "DROP"});
}

void test_network::partition_one_way(const std::string& from, const std::string& to) {
  exec(to, {"iptables", "-w", "-A", "INPUT", "-s", address(from), "-j", "DROP"});
}

void test_network::loss(const std::string& host, double probability) {
  if (probability < 0 || probability > 1) throw std::invalid_argument("probability in [0, 1]");
  char p[32];
  std::snprintf(p, sizeof p, "%.4f", probability);
  for (const char* chain : {"INPUT", "OUTPUT"})
    exec(host, {"iptables", "-w", "-A", chain, "-m", "statistic", "--mode", "random",
                "--probability", p, "-j", "DROP"});
}

void test_network::rate_limit(const std::string& host, const std::string& rate) {
  exec(host, {"tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate, "burst",
              "32kbit", "latency", "400ms"});
}

void test_network::heal(const std::string& host) {
  exec(host, {"iptables", "-w", "-F"});
  link_up(host);
  // No qdisc of ours is not an error.
  run_command(
      {"ip", "netns", "exec", namespace_of(host), "tc", "qdisc", "del", "dev", "eth0", "root"});
}

std::vector<pid_t> test_network::pids_in(const std::string& host) const {
  const auto out = run_checked({"ip", "netns", "pids", namespace_of(host)});
  std::vector<pid_t> pids;
  std::istringstream in(out);
  for (pid_t pid; in >> pid;) pids.push_back(pid);
  return pids;
}

// ---- stale namespaces -------------------------------------------------------------------------

void remove_stale_namespaces() {
  std::error_code ec;
  std::vector<std::string> stale;
  for (const auto& entry : std::filesystem::directory_iterator(netns_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(name_prefix, 0) != 0) continue;
    // gx<pid>n<k>-<host>
    const char* begin = name.data() + std::strlen(name_prefix);
    const char* end = name.data() + name.size();
    pid_t pid = 0;
    const auto [next, err] = std::from_chars(begin, end, pid);
    if (err != std::errc() || next == begin || next == end || *next != 'n' || pid <= 0) continue;
    if (name.find('-', static_cast<std::size_t>(next - name.data())) == std::string::npos) continue;
    if (pid == ::getpid() || pid_alive(pid)) continue;
    stale.push_back(name);
  }
  for (const auto& name : stale) {
    auto r = run_command({"ip", "netns", "pids", name}, 10s);
    std::istringstream in(r.output);
    for (pid_t pid; in >> pid;) {
      std::fprintf(stderr, "[netns] killing pid %d left in stale namespace %s\n", pid,
                   name.c_str());
      ::kill(pid, SIGKILL);
    }
    const auto until = clock::now() + 5s;
    while (clock::now() < until) {
      auto again = run_command({"ip", "netns", "pids", name}, 10s);
      if (again.output.find_first_not_of(" \n") == std::string::npos) break;
      std::this_thread::sleep_for(10ms);
    }
    std::fprintf(stderr, "[netns] deleting stale namespace %s\n", name.c_str());
    run_command({"ip", "netns", "del", name}, 10s);
  }
}

}  // namespace galaxies::test::netns
