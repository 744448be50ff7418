#include "support/cluster.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <system_error>

#include "support/host_tools.hpp"

#ifndef GALAXIES_CLI_PATH
#error "GALAXIES_CLI_PATH must name the built galaxies CLI (see tests/support/CMakeLists.txt)"
#endif

namespace galaxies::test {
namespace {

using clock = std::chrono::steady_clock;

// A master stops its workers within stop_grace (3 s) and its links within 1 s.
constexpr auto graceful_stop_deadline = 10s;
constexpr auto kill_deadline = 5s;
// The reader ends at EOF, which needs every worker (holding the pipe) gone too.
constexpr auto reader_eof_deadline = 5s;
// sun_path holds 107 bytes and a NUL; /tmp/gxXXXXXX/NAME.sock stays far below.
constexpr std::size_t max_unix_path = 100;

std::string json_string(const nlohmann::json& doc, const char* key) {
  const auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

event parse_event(nlohmann::json doc) {
  event e;
  e.name = json_string(doc, "event");
  e.observer = json_string(doc, "observer");
  e.node = json_string(doc, "node");
  e.host = json_string(doc, "host");
  e.reason = json_string(doc, "reason");
  if (const auto pid = doc.find("pid"); pid != doc.end() && pid->is_number_integer())
    e.pid = pid->get<int>();
  e.raw = std::move(doc);
  return e;
}

void signal_if_same(const host_process::process_identity& p, int sig) {
  if (p.start_time != 0 && tools::start_time(p.pid) == p.start_time) ::kill(p.pid, sig);
}

// Where a sanitizer report starts in a host's log (its workers write there too), or npos. ASan and
// LSan open with "==PID==ERROR: ...Sanitizer", UBSan with "FILE:LINE:COL: runtime error: ".
std::size_t sanitizer_report_at(const std::string& log) {
  std::size_t at = std::string::npos;
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                             ": runtime error: ", "SUMMARY: UndefinedBehaviorSanitizer"}) {
    at = std::min(at, log.find(marker));
  }
  if (at == std::string::npos) return at;
  const auto line = log.rfind('\n', at);
  return line == std::string::npos ? 0 : line + 1;
}

}  // namespace

// ---- temp_dir, cli_path, helpers ------------------------------------------------------------

temp_dir::temp_dir() {
  char pattern[] = "/tmp/gxXXXXXX";  // short: Unix socket paths live here
  if (!::mkdtemp(pattern))
    throw std::system_error(errno, std::system_category(), "mkdtemp /tmp/gxXXXXXX");
  path_ = pattern;
}

temp_dir::~temp_dir() {
  // For a post-mortem: the hosts' logs and the registry file stay where they were.
  if (std::getenv("GALAXIES_TEST_KEEP_DIRS")) {
    std::fprintf(stderr, "[harness] kept %s\n", path_.c_str());
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string cli_path() {
  return GALAXIES_CLI_PATH;
}

std::size_t count(const std::vector<event>& events, std::string_view name,
                  std::string_view observer, std::string_view node) {
  return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const event& e) {
    if (e.name != name || (!observer.empty() && e.observer != observer)) return false;
    return e.node.empty() ? e.host == node : e.node == node;
  }));
}

bool process_exited(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  const char s = tools::state(pid);
  return s == 0 || s == 'Z' || s == 'X';
}

// ---- host_process ---------------------------------------------------------------------------

host_process::host_process(const std::filesystem::path& dir, const std::string& registry_url,
                           const std::string& name, host_options opts)
    : dir_(dir), registry_url_(registry_url), name_(name), opts_(std::move(opts)) {
  unix_path_ = (dir_ / (name_ + ".sock")).string();
  if (unix_path_.size() > max_unix_path)
    throw std::invalid_argument("unix socket path too long: " + unix_path_);

  tools::unique_fd log(
      ::open(log_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0600));
  if (log.get() < 0) throw std::system_error(errno, std::system_category(), "open host log");
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category(), "pipe2");
  tools::unique_fd out_read(out[0]), out_write(out[1]);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0)
    throw std::system_error(errno, std::system_category(), "pipe2");
  tools::unique_fd wake_read(wake[0]), wake_write(wake[1]);

  std::vector<std::string> argv = opts_.launcher;
  argv.insert(argv.end(), {cli_path(), "host"});
  const std::pair<const char*, std::string> options[] = {
      {"--workers", std::to_string(opts_.workers)},
      {"--registry", registry_url_},
      {"--cluster", opts_.cluster},
      {"--events", "json"},
      {"--listen", "127.0.0.1:0"},
      {"--unix", unix_path_},
      {"--log-level", "debug"},
  };
  for (const auto& [flag, value] : options) argv.insert(argv.end(), {flag, value});
  argv.insert(argv.end(), opts_.extra_args.begin(), opts_.extra_args.end());
  pid_ = tools::spawn(argv, out_write.get(), log.get());
  // Our copy of the write end must go, or the reader never sees EOF.
  out_write.reset();
  wake_read_ = wake_read.release();
  wake_write_ = wake_write.release();
  reader_ = std::thread([this, fd = out_read.release()] { read_stdout(fd); });
}

host_process::~host_process() {
  remember_children();
  if (!reaped_) {
    ::kill(pid_, SIGTERM);
    ::kill(pid_, SIGCONT);  // a stopped master would never handle SIGTERM
    if (!wait_reaped(graceful_stop_deadline)) {
      ::kill(pid_, SIGKILL);
      wait_reaped(kill_deadline);
    }
  }
  std::vector<process_identity> workers;
  {
    std::lock_guard lock(mutex_);
    workers = workers_;
  }
  for (const auto& w : workers) signal_if_same(w, SIGKILL);

  bool eof = false;
  {
    std::unique_lock lock(mutex_);
    eof = changed_.wait_for(lock, reader_eof_deadline, [&] { return eof_; });
  }
  if (!eof) {
    std::fprintf(stderr, "[harness] %s: stdout still open after teardown; not waiting\n",
                 name_.c_str());
    const char byte = 1;
    [[maybe_unused]] auto n = ::write(wake_write_, &byte, 1);
  }
  reader_.join();
  ::close(wake_read_);
  ::close(wake_write_);

  // A sanitizer report from the host or a worker would otherwise vanish with the temp dir, and a
  // worker it killed is just respawned: show it (ctest also fails a test whose output holds one,
  // see tests/CMakeLists.txt) and fail the test. Bounded: the log is at debug level.
  const std::string text = log();
  if (const auto at = sanitizer_report_at(text); at != std::string::npos) {
    constexpr std::size_t shown = 64 * 1024;
    std::fprintf(stderr, "[harness] %s: sanitizer report in its log:\n%.*s%s\n", name_.c_str(),
                 static_cast<int>(std::min(shown, text.size() - at)), text.data() + at,
                 text.size() - at > shown ? "\n[harness] (cut)" : "");
    ADD_FAILURE() << "sanitizer report in the log of host " << name_ << " (printed above)";
  }
}

std::filesystem::path host_process::log_path() const {
  return dir_ / (name_ + ".log");
}

std::string host_process::log() const {
  tools::unique_fd fd(::open(log_path().c_str(), O_RDONLY | O_CLOEXEC));
  std::string text;
  if (fd.get() < 0) return text;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
  }
}

void host_process::read_stdout(int fd) {
  tools::unique_fd out(fd);
  std::string pending;
  char buf[65536];
  auto take_line = [&](std::string_view line) {
    auto doc = nlohmann::json::parse(line, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
      std::fprintf(stderr, "[harness] %s: not an event: %.*s\n", name_.c_str(),
                   static_cast<int>(line.size()), line.data());
      return;
    }
    event e = parse_event(std::move(doc));
    // The start time is read now, while the worker surely lives, to recognise it at teardown.
    const process_identity identity{e.pid, e.name == "started" ? tools::start_time(e.pid) : 0};
    std::lock_guard lock(mutex_);
    if (e.name == "started") workers_.push_back(identity);
    events_.push_back(std::move(e));
    ++version_;
    changed_.notify_all();
  };
  while (true) {
    pollfd fds[2] = {{out.get(), POLLIN, 0}, {wake_read_, POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[1].revents != 0) break;
    const ssize_t got = ::read(out.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    pending.append(buf, static_cast<std::size_t>(got));
    std::size_t start = 0;
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
      if (nl > start) take_line(std::string_view(pending).substr(start, nl - start));
      start = nl + 1;
    }
    pending.erase(0, start);
  }
  if (!pending.empty()) take_line(pending);
  std::lock_guard lock(mutex_);
  eof_ = true;
  ++version_;
  changed_.notify_all();
}

std::vector<event> host_process::events() const {
  std::lock_guard lock(mutex_);
  return events_;
}

bool host_process::wait_events(std::chrono::milliseconds deadline,
                               const std::function<bool(const std::vector<event>&)>& pred) const {
  const auto until = clock::now() + deadline;
  std::unique_lock lock(mutex_);
  while (true) {
    const auto seen = version_;
    auto snapshot = events_;
    // The predicate runs unlocked: it may look at other hosts or at this one's status.
    lock.unlock();
    if (pred(snapshot)) return true;
    lock.lock();
    const auto now = clock::now();
    if (now >= until) return false;
    // Woken by new events; the cap re-evaluates predicates that depend on more than events.
    changed_.wait_until(lock, std::min(until, now + 50ms), [&] { return version_ != seen; });
  }
}

std::vector<std::string> host_process::started_nodes() const {
  const auto all = events();
  std::vector<std::string> live;
  for (const auto& e : all)
    if (e.name == "started" && count(all, "nodeLeft", "", e.node) == 0) live.push_back(e.node);
  // A host with a single worker has no sibling to see it leave: ask the master as well.
  const auto s = status();
  if (s.is_null()) return live;
  std::vector<std::string> registered;
  for (const auto& n : s["status"]["nodes"]) registered.push_back(json_string(n, "node"));
  std::erase_if(live, [&](const std::string& id) {
    return std::find(registered.begin(), registered.end(), id) == registered.end();
  });
  return live;
}

std::vector<int> host_process::worker_pids() const {
  std::vector<int> pids;
  for (const auto& e : events())
    if (e.name == "started") pids.push_back(e.pid);
  return pids;
}

std::vector<std::string> host_process::wait_started(std::size_t n,
                                                    std::chrono::milliseconds deadline) const {
  std::vector<std::string> live;
  wait_events(deadline, [&](const std::vector<event>& all) {
    live.clear();
    for (const auto& e : all)
      if (e.name == "started" && count(all, "nodeLeft", "", e.node) == 0) live.push_back(e.node);
    // A master that failed to start (see its log) will start nobody: do not wait it out.
    return live.size() >= n || !running();
  });
  return live;
}

std::string host_process::host_id() const {
  {
    std::lock_guard lock(mutex_);
    if (!host_id_.empty()) return host_id_;
    for (const auto& e : events_)
      if (e.name == "started" && !e.host.empty()) return host_id_ = e.host;
  }
  const auto s = status();
  const std::string id = s.is_null() ? std::string() : json_string(s, "host");
  std::lock_guard lock(mutex_);
  if (!id.empty()) host_id_ = id;
  return id;
}

nlohmann::json host_process::status(std::chrono::milliseconds timeout) const {
  auto s = tools::query_status(unix_path_, opts_.cluster, timeout);
  if (s.is_null() || !s.is_object()) return nullptr;
  return {{"host", s.value("host", "")},
          {"address", s.value("address", "")},
          {"hostname", s.value("hostname", "")},
          {"pid", s.value("pid", 0)},
          {"status", s}};
}

std::string host_process::address() const {
  const auto s = status();
  return s.is_null() ? std::string() : json_string(s, "address");
}

bool host_process::wait_reaped(std::chrono::milliseconds deadline) {
  if (reaped_) return true;
  const auto until = clock::now() + deadline;
  while (true) {
    const pid_t r = ::waitpid(pid_, nullptr, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      reaped_ = true;
      return true;
    }
    if (clock::now() >= until) return false;
    std::this_thread::sleep_for(5ms);  // polling a child; no fd to wait on without pidfd
  }
}

// The master's current children, before it goes: workers that never printed "started" are
// orphaned with it and must still be killed at the end.
void host_process::remember_children() {
  if (reaped_) return;
  const auto children = tools::children_of(pid_);
  std::lock_guard lock(mutex_);
  for (const pid_t child : children) {
    const auto known = std::find_if(workers_.begin(), workers_.end(),
                                    [&](const process_identity& p) { return p.pid == child; });
    if (known == workers_.end()) workers_.push_back({child, tools::start_time(child)});
  }
}

void host_process::terminate() {
  if (reaped_) return;
  remember_children();
  ::kill(pid_, SIGTERM);
  ::kill(pid_, SIGCONT);
  if (!wait_reaped(graceful_stop_deadline)) {
    std::fprintf(stderr, "[harness] %s did not stop within %lld s: SIGKILL\n", name_.c_str(),
                 static_cast<long long>(graceful_stop_deadline.count()));
    ::kill(pid_, SIGKILL);
    wait_reaped(kill_deadline);
  }
}

void host_process::kill9() {
  if (reaped_) return;
  remember_children();
  ::kill(pid_, SIGKILL);
  wait_reaped(kill_deadline);
}

bool host_process::running() const {
  if (reaped_) return false;
  siginfo_t info{};
  // WNOWAIT: look without reaping; the reaping happens in the non-const members.
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return false;
  return info.si_pid == 0;
}

void host_process::request_stop() {
  if (reaped_) return;
  remember_children();
  ::kill(pid_, SIGTERM);
  ::kill(pid_, SIGCONT);
}

void host_process::send_signal(int sig) {
  if (!reaped_) ::kill(pid_, sig);
}

// ---- cluster --------------------------------------------------------------------------------

cluster::cluster(std::string name)
    : name_(std::move(name)), registry_url_("file:" + (dir_.path() / "registry").string()) {}

cluster::~cluster() {
  for (auto& h : hosts_) h->request_stop();
  hosts_.clear();
}

host_process& cluster::add_host(host_options opts) {
  if (opts.cluster == host_options{}.cluster) opts.cluster = name_;
  const std::string name = "h" + std::to_string(hosts_.size());
  hosts_.push_back(
      std::make_unique<host_process>(dir_.path(), registry_url_, name, std::move(opts)));
  return *hosts_.back();
}

std::vector<event> cluster::all_events() const {
  std::vector<event> all;
  for (const auto& h : hosts_) {
    auto e = h->events();
    all.insert(all.end(), e.begin(), e.end());
  }
  return all;
}

}  // namespace galaxies::test
