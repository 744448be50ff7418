// The process layer with real processes. spawn_worker execs /proc/self/exe, so this binary is
// also the worker: main() runs worker mode when GALAXIES_CHANNEL_FD is set, and gtest otherwise.
#include "process/supervisor.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "process/fork_server.hpp"
#include "process/proc_stat.hpp"
#include "process/spawn.hpp"
#include "transport/shm_channel.hpp"

namespace galaxies::process {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr auto deadline = 10s;  // generous: the machine is small and noisy

// ---- worker side -------------------------------------------------------------------------------

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : fallback;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// "0,1,2,3": every fd this process has open, except the one listing them.
std::string open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return "?";
  std::vector<int> fds;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != ::dirfd(dir)) fds.push_back(fd);
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  std::string text;
  for (int fd : fds) text += (text.empty() ? "" : ",") + std::to_string(fd);
  return text;
}

// A "SigBlk:" or "SigIgn:" mask of /proc/self/status, as hex.
std::string signal_mask(const std::string& key) {
  std::FILE* status = std::fopen("/proc/self/status", "r");
  if (status == nullptr) return "?";
  char line[256];
  std::string mask = "?";
  while (std::fgets(line, sizeof line, status) != nullptr) {
    const std::string text(line);
    if (text.rfind(key + ":", 0) == 0) {
      mask = text.substr(key.size() + 1);
      mask.erase(std::remove_if(mask.begin(), mask.end(), ::isspace), mask.end());
    }
  }
  std::fclose(status);
  return mask;
}

// Set before a test forks its server: a worker forked from it has it, an exec'd one has 0.
int marker = 0;

// Modes (TEST_WORKER_MODE, or TEST_WORKER_MODE_<slot> for one slot):
//   echo         say hello, then echo the channel until EOF, exit 0
//   block        say hello, then read until EOF, exit 0 (a worker exits when its master goes)
//   ignore_term  like block, but ignores SIGTERM (installed before the hello)
//   crash        exit 3 at once
//   orphan       start a child that waits for a signal, name it in the hello (orphan=PID), exit 0
int run_worker() {
  std::optional<int> channel;
  try {
    channel = take_channel_from_environment();
  } catch (const std::exception&) {
    return 90;
  }
  if (!channel) return 91;
  const std::string slot = env_or(worker_index_env, "-");
  const std::string mode =
      env_or(("TEST_WORKER_MODE_" + slot).c_str(), env_or("TEST_WORKER_MODE", "echo"));
  if (mode == "crash") return 3;
  if (mode == "ignore_term") ::signal(SIGTERM, SIG_IGN);
  pid_t orphan = 0;
  if (mode == "orphan" && (orphan = ::fork()) == 0) {
    ::pause();
    ::_exit(0);
  }

  const int fd = *channel;
  const std::string hello =
      "hello pid=" + std::to_string(::getpid()) + " fd=" + std::to_string(fd) +
      " fds=" + open_fds() + " env=" + (std::getenv(channel_fd_env) ? "set" : "unset") +
      " slot=" + slot + " probe=" + env_or("TEST_PROBE", "-") +
      " blocked=" + signal_mask("SigBlk") + " ignored=" + signal_mask("SigIgn") +
      " marker=" + std::to_string(marker) + " master=" + std::to_string(master_pid()) +
      " orphan=" + std::to_string(orphan) + "\n";
  if (!write_all(fd, hello)) return 92;
  if (mode == "orphan") return 0;
  char buffer[512];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0 ? 0 : 93;
    if (mode == "echo" && !write_all(fd, std::string_view(buffer, static_cast<std::size_t>(n)))) {
      return 94;
    }
  }
}

// ---- master side -------------------------------------------------------------------------------

// Runs the io_context until `predicate` holds or `limit` passes.
template <class Predicate>
bool run_until(asio::io_context& io, Predicate predicate,
               std::chrono::milliseconds limit = deadline) {
  const auto until = steady::now() + limit;
  while (!predicate()) {
    if (steady::now() >= until) return false;
    io.run_for(2ms);
    if (io.stopped()) {
      io.restart();
      std::this_thread::sleep_for(1ms);  // nothing to run: poll
    }
  }
  return true;
}

// Reads the channel without blocking, line by line.
class line_reader {
 public:
  explicit line_reader(int fd) : fd_(fd) {}
  // A complete line (without '\n') if one has arrived; nullopt otherwise.
  std::optional<std::string> poll() {
    char chunk[512];
    while (true) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n > 0) {
        buffer_.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    const auto end = buffer_.find('\n');
    if (end == std::string::npos) return std::nullopt;
    std::string line = buffer_.substr(0, end);
    buffer_.erase(0, end + 1);
    return line;
  }

 private:
  int fd_;
  std::string buffer_;
};

std::optional<std::string> read_line(asio::io_context& io, int fd) {
  line_reader reader(fd);
  std::optional<std::string> line;
  run_until(io, [&] { return (line = reader.poll()).has_value(); });
  return line;
}

// "value" of `key=value` in a hello line.
std::string field(const std::string& line, const std::string& key) {
  const auto at = line.find(" " + key + "=");
  if (at == std::string::npos) return "<missing " + key + ">";
  const auto begin = at + key.size() + 2;
  return line.substr(begin, line.find(' ', begin) - begin);
}

// While alive: SIGTERM and SIGCHLD blocked, SIGPIPE and SIGINT ignored, as in a master; no worker
// may start with any of it.
class master_signal_state {
 public:
  master_signal_state() {
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &blocked, &previous_mask_);
    previous_pipe_ = ::signal(SIGPIPE, SIG_IGN);
    previous_int_ = ::signal(SIGINT, SIG_IGN);
  }
  ~master_signal_state() {
    ::signal(SIGINT, previous_int_);
    ::signal(SIGPIPE, previous_pipe_);
    ::sigprocmask(SIG_SETMASK, &previous_mask_, nullptr);
  }
  master_signal_state(const master_signal_state&) = delete;
  master_signal_state& operator=(const master_signal_state&) = delete;

 private:
  sigset_t previous_mask_;
  sighandler_t previous_pipe_;
  sighandler_t previous_int_;
};

// The hello of a worker that started with no signal blocked and none of those ignored.
void expect_default_signals(const std::string& hello) {
  EXPECT_EQ(std::stoull(field(hello, "blocked"), nullptr, 16), 0u) << "signal mask reset";
  const auto ignored = std::stoull(field(hello, "ignored"), nullptr, 16);
  for (int sig : {SIGTERM, SIGINT, SIGCHLD, SIGPIPE})
    EXPECT_EQ(ignored & (1ull << (sig - 1)), 0u) << "signal " << sig << " still ignored";
}

bool exited_with(int status, int code) {
  return WIFEXITED(status) && WEXITSTATUS(status) == code;
}
bool killed_by(int status, int sig) {
  return WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

// Reaps a child we spawned without a supervisor, within the deadline.
std::optional<int> wait_child(pid_t pid) {
  const auto until = steady::now() + deadline;
  while (steady::now() < until) {
    int status = 0;
    const pid_t rc = ::waitpid(pid, &status, WNOHANG);
    if (rc == pid) return status;
    if (rc < 0 && errno != EINTR) return std::nullopt;
    std::this_thread::sleep_for(1ms);
  }
  return std::nullopt;
}

const std::vector<std::string> worker_argv{"supervisor_test-worker"};

// Keeps track of every process and channel a test started, and ends them by pid in teardown.
class ProcessTest : public ::testing::Test {
 protected:
  void TearDown() override {
    sup_.reset();
    for (pid_t pid : started_) {
      if (reaped_.count(pid) != 0) continue;  // reaped pids may already be reused
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    for (const auto& [pid, fd] : channels_) {
      if (fd >= 0) ::close(fd);
    }
  }

  void track(pid_t pid, int fd) {
    started_.push_back(pid);
    channels_[pid] = fd;
  }
  void mark_reaped(pid_t pid) { reaped_.insert(pid); }
  void close_channel(pid_t pid) {
    ::close(channels_.at(pid));
    channels_[pid] = -1;
  }

  struct event {
    std::size_t slot;
    pid_t pid;
    int status;  // exits only
    steady::time_point at;
  };

  // A fork server of this process (fork_server.hpp). Its workers return from here into
  // run_worker(); the test fails if it cannot start.
  std::shared_ptr<fork_server> start_fork_server() {
    marker = 42;
    std::string why_not;
    std::shared_ptr<fork_server> forks = fork_server::start(why_not);
    if (!forks && std::getenv(channel_fd_env) != nullptr) ::_exit(run_worker());
    EXPECT_TRUE(forks) << why_not;
    forks_ = forks;
    return forks;
  }

  supervisor& make_supervisor(std::size_t workers, restart_policy policy,
                              std::vector<std::pair<std::string, std::string>> env) {
    supervisor::callbacks cb;
    cb.spawned = [this](std::size_t slot, pid_t pid, int fd,
                        std::unique_ptr<transport::shm_channel>) {
      track(pid, fd);
      spawns_.push_back({slot, pid, 0, steady::now()});
      if (on_spawn_) on_spawn_();
    };
    cb.exited = [this](std::size_t slot, pid_t pid, int status) {
      mark_reaped(pid);
      exits_.push_back({slot, pid, status, steady::now()});
      if (on_exit_) on_exit_();
    };
    cb.gave_up = [this](std::size_t slot, const std::string& why) {
      gave_up_.emplace_back(slot, why);
    };
    sup_ = std::make_unique<supervisor>(io_.get_executor(), worker_argv, workers, policy,
                                        std::move(cb), std::move(env), 0, forks_);
    return *sup_;
  }

  int channel_of(pid_t pid) const { return channels_.at(pid); }

  std::size_t exits_in(std::size_t slot) const {
    return static_cast<std::size_t>(std::count_if(exits_.begin(), exits_.end(),
                                                  [&](const event& e) { return e.slot == slot; }));
  }

  asio::io_context io_;
  std::shared_ptr<fork_server> forks_;  // after sup_, which uses it, is gone
  std::unique_ptr<supervisor> sup_;
  std::vector<event> spawns_;
  std::vector<event> exits_;
  std::vector<std::pair<std::size_t, std::string>> gave_up_;
  std::function<void()> on_exit_;
  std::function<void()> on_spawn_;

 private:
  std::vector<pid_t> started_;
  std::set<pid_t> reaped_;
  std::map<pid_t, int> channels_;
};

restart_policy fast_policy() {
  return restart_policy{.initial_delay = 10ms,
                        .max_delay = 1000ms,
                        .stable_after = 60000ms,
                        .crash_loop_exits = 5,
                        .crash_window = 2000ms};
}

// ---- spawn_worker ------------------------------------------------------------------------------

using SpawnWorker = ProcessTest;

TEST_F(SpawnWorker, WorkerGetsTheChannelAsFd3AndNoOtherFdOfTheMaster) {
  // A leaky fd in the master (not close-on-exec, like an Asio socket) must not reach the worker.
  int leaky[2];
  ASSERT_EQ(::pipe(leaky), 0);
  ::setenv("TEST_PROBE", "from-parent", 1);
  ::setenv(channel_fd_env, "77", 1);  // as if this master were itself some worker
  const auto child = [] {
    const master_signal_state signals;  // a master's must not pass on
    return spawn_worker(worker_argv, {{"TEST_WORKER_MODE", "echo"}, {"TEST_PROBE", "from-extra"}});
  }();
  ::close(leaky[0]);
  ::close(leaky[1]);
  ::unsetenv("TEST_PROBE");
  ::unsetenv(channel_fd_env);
  track(child.pid, child.channel_fd);

  EXPECT_NE(::fcntl(child.channel_fd, F_GETFD) & FD_CLOEXEC, 0) << "master end is close-on-exec";
  asio::io_context io;
  const auto hello = read_line(io, child.channel_fd);
  ASSERT_TRUE(hello) << "no hello from the worker";
  EXPECT_EQ(field(*hello, "pid"), std::to_string(child.pid));
  EXPECT_EQ(field(*hello, "fd"), "3");
  EXPECT_EQ(field(*hello, "fds"), "0,1,2,3");
  EXPECT_EQ(field(*hello, "env"), "unset") << "take_channel_from_environment removes it";
  EXPECT_EQ(field(*hello, "probe"), "from-extra") << "extra_env overrides the environment";
  expect_default_signals(*hello);

  ASSERT_TRUE(write_all(child.channel_fd, "ping\n"));
  EXPECT_EQ(read_line(io, child.channel_fd), "ping");

  close_channel(child.pid);
  const auto status = wait_child(child.pid);
  ASSERT_TRUE(status);
  mark_reaped(child.pid);
  EXPECT_TRUE(exited_with(*status, 0)) << "a worker exits when its channel closes";
}

// Moves an fd of this process out of the way and puts it back (flags included) when destroyed.
class parked_fd {
 public:
  explicit parked_fd(int fd) : fd_(fd), flags_(::fcntl(fd, F_GETFD)) {
    if (flags_ >= 0) {
      saved_ = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
      ::close(fd);
    }
  }
  ~parked_fd() {
    if (saved_ < 0) return;
    ::dup2(saved_, fd_);
    ::fcntl(fd_, F_SETFD, flags_);
    ::close(saved_);
  }
  parked_fd(const parked_fd&) = delete;
  parked_fd& operator=(const parked_fd&) = delete;

 private:
  int fd_;
  int flags_;
  int saved_ = -1;
};

TEST_F(SpawnWorker, ChildEndThatIsAlreadyFd3IsStillInherited) {
  // socketpair hands out the two lowest free fds; with 0 and 3 free (and 1, 2 taken) they are 0
  // for the master's end and 3 for the child's.
  std::optional<spawned> child;
  int master_fd = -1;
  {
    parked_fd stdin_parked(0);
    parked_fd fd3_parked(3);
    try {
      child = spawn_worker(worker_argv, {{"TEST_WORKER_MODE", "echo"}});
    } catch (...) {
    }
    if (child) {
      master_fd = ::fcntl(child->channel_fd, F_DUPFD_CLOEXEC, 10);
      ::close(child->channel_fd);
      track(child->pid, master_fd);
    }
  }
  ASSERT_TRUE(child);
  ASSERT_EQ(child->channel_fd, 0) << "the test setup did not put the child's end on fd 3";

  asio::io_context io;
  const auto hello = read_line(io, master_fd);
  ASSERT_TRUE(hello) << "no hello: the channel was not inherited";
  EXPECT_EQ(field(*hello, "fd"), "3");
  EXPECT_EQ(field(*hello, "fds"), "1,2,3") << "0 was the master's end, close-on-exec";
  ASSERT_TRUE(write_all(master_fd, "ping\n"));
  EXPECT_EQ(read_line(io, master_fd), "ping");
}

// The path chosen for this program was renamed away before the exec (a rebuild did so under a
// running benchmark): the worker runs from the running file instead.
TEST_F(SpawnWorker, RunsTheRunningFileWhenThePathChosenIsGoneByTheExec) {
  const std::string gone = "/nonexistent-galaxies-test/" + worker_argv[0];
  auto child = spawn_worker_from(gone, worker_argv, {{"TEST_WORKER_MODE", "echo"}});
  track(child.pid, child.channel_fd);
  asio::io_context io;
  ASSERT_TRUE(read_line(io, child.channel_fd)) << "no hello: the worker did not start";
  ASSERT_TRUE(write_all(child.channel_fd, "ping\n"));
  EXPECT_EQ(read_line(io, child.channel_fd), "ping");
}

TEST_F(SpawnWorker, RejectsAnEmptyArgv) {
  EXPECT_THROW(spawn_worker({}, {}), std::system_error);
}

// ---- take_channel_from_environment -------------------------------------------------------------

class TakeChannel : public ::testing::Test {
 protected:
  void TearDown() override { ::unsetenv(channel_fd_env); }
};

TEST_F(TakeChannel, UnsetMeansNotAWorker) {
  ::unsetenv(channel_fd_env);
  EXPECT_EQ(take_channel_from_environment(), std::nullopt);
}

TEST_F(TakeChannel, RejectsWhatIsNotAnFdNumber) {
  for (const char* text : {"", "x", "3x", " 3", "-1", "+3", "99999999999999999999"}) {
    ::setenv(channel_fd_env, text, 1);
    EXPECT_THROW(take_channel_from_environment(), std::runtime_error) << '"' << text << '"';
  }
}

TEST_F(TakeChannel, RejectsAClosedFdAndANonSocket) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ::setenv(channel_fd_env, std::to_string(p[0]).c_str(), 1);
  try {
    take_channel_from_environment();
    ADD_FAILURE() << "a pipe was taken for a channel";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("not name a socket"));
  }
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_THROW(take_channel_from_environment(), std::runtime_error) << "closed fd";
}

TEST_F(TakeChannel, TakesASocketMakesItCloseOnExecAndClearsTheVariable) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  ::setenv(channel_fd_env, std::to_string(pair[1]).c_str(), 1);
  EXPECT_EQ(take_channel_from_environment(), pair[1]);
  EXPECT_NE(::fcntl(pair[1], F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(std::getenv(channel_fd_env), nullptr);
  ::close(pair[0]);
  ::close(pair[1]);
}

// ---- take_channel_rings_from_environment -------------------------------------------------------

// The three descriptors a master hands a worker with its rings, named in the environment as
// spawn_worker names them (fds of this process, given up to the function under test).
class TakeChannelRings : public ::testing::Test {
 protected:
  TakeChannelRings() : master_(galaxies::transport::shm_channel::create(4096, theirs_)) {}
  void TearDown() override {
    for (const char* v :
         {channel_rings_fd_env, channel_doorbell_fd_env, channel_master_doorbell_fd_env})
      ::unsetenv(v);
  }
  void name(const char* variable, int fd) { ::setenv(variable, std::to_string(fd).c_str(), 1); }
  void name_all() {
    name(channel_rings_fd_env, theirs_.memory.release());
    name(channel_doorbell_fd_env, theirs_.doorbell.release());
    name(channel_master_doorbell_fd_env, theirs_.peer_doorbell.release());
  }
  std::string refusal() {
    try {
      take_channel_rings_from_environment();
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "accepted";
  }

  galaxies::transport::shm_channel_fds theirs_;
  std::unique_ptr<galaxies::transport::shm_channel> master_;
};

TEST_F(TakeChannelRings, UnsetMeansNoRings) {
  EXPECT_EQ(take_channel_rings_from_environment(), nullptr);
}

TEST_F(TakeChannelRings, TakesWhatTheMasterHandsOverMakesItCloseOnExecAndClearsTheVariables) {
  const int doorbell = theirs_.doorbell.get();
  const int master_doorbell = theirs_.peer_doorbell.get();
  // A worker's file status is its own to set: what it takes is made non-blocking whatever it was.
  for (int fd : {doorbell, master_doorbell})
    ASSERT_EQ(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
  name_all();
  const auto rings = take_channel_rings_from_environment();
  ASSERT_NE(rings, nullptr);
  for (int fd : {doorbell, master_doorbell}) {
    EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0) << "fd " << fd;
    EXPECT_NE(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0) << "fd " << fd;
  }
  EXPECT_EQ(std::getenv(channel_rings_fd_env), nullptr);
  EXPECT_EQ(std::getenv(channel_doorbell_fd_env), nullptr);
  EXPECT_EQ(std::getenv(channel_master_doorbell_fd_env), nullptr);
}

TEST_F(TakeChannelRings, RefusesAnEventfdOrASocketForADoorbellSayingWhichAndWhy) {
  theirs_.doorbell.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  const int eventfd = theirs_.doorbell.get();
  name_all();
  EXPECT_THAT(refusal(), ::testing::HasSubstr(std::string(channel_doorbell_fd_env) + "=\"" +
                                              std::to_string(eventfd) + "\" does not name a pipe"));
  galaxies::transport::shm_channel_fds more;
  const auto other = galaxies::transport::shm_channel::create(4096, more);
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  ::close(pair[1]);
  more.peer_doorbell.reset(pair[0]);
  theirs_ = std::move(more);
  name_all();
  EXPECT_THAT(refusal(), ::testing::HasSubstr(std::string(channel_master_doorbell_fd_env) + "=\"" +
                                              std::to_string(pair[0]) + "\" does not name a pipe"));
}

TEST_F(TakeChannelRings, RefusesAReadEndWhereAWriteEndIsDueAndOnePipeForBoth) {
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_NONBLOCK | O_CLOEXEC), 0);
  const int read_end = ::dup(ends[0]);
  theirs_.peer_doorbell.reset(read_end);
  name_all();
  EXPECT_THAT(refusal(),
              ::testing::HasSubstr(std::string(channel_master_doorbell_fd_env) + " (fd " +
                                   std::to_string(read_end) + ") is not a pipe's write end"));
  galaxies::transport::shm_channel_fds more;
  const auto other = galaxies::transport::shm_channel::create(4096, more);
  more.doorbell.reset(ends[0]);
  more.peer_doorbell.reset(ends[1]);
  theirs_ = std::move(more);
  name_all();
  EXPECT_THAT(refusal(),
              ::testing::HasSubstr(std::string(channel_doorbell_fd_env) + " and " +
                                   channel_master_doorbell_fd_env + " are ends of one pipe"));
}

TEST_F(TakeChannelRings, RefusesAMissingVariableStdioAClosedFdAndAnFdNamedTwice) {
  name(channel_rings_fd_env, theirs_.memory.get());
  name(channel_doorbell_fd_env, theirs_.doorbell.get());
  EXPECT_THAT(refusal(),
              ::testing::HasSubstr(std::string(channel_master_doorbell_fd_env) + " is not set"));
  theirs_.memory.release();  // taken, and closed, by the refusal
  theirs_.doorbell.release();
  name(channel_rings_fd_env, 1);
  EXPECT_THAT(refusal(), ::testing::HasSubstr("names a standard stream"));
  galaxies::transport::shm_channel_fds more;
  const auto other = galaxies::transport::shm_channel::create(4096, more);
  const int closed = more.doorbell.get();
  more.doorbell.reset();
  name(channel_rings_fd_env, more.memory.release());  // taken, and closed, by the refusal
  name(channel_doorbell_fd_env, closed);
  name(channel_master_doorbell_fd_env, more.peer_doorbell.get());  // not reached: ours to close
  EXPECT_THAT(refusal(),
              ::testing::HasSubstr(std::string(channel_doorbell_fd_env) + "=\"" +
                                   std::to_string(closed) + "\" names no open file descriptor"));
  galaxies::transport::shm_channel_fds again;
  const auto third = galaxies::transport::shm_channel::create(4096, again);
  name(channel_rings_fd_env, again.memory.release());  // taken, and closed, by the refusal
  const int doorbell = again.doorbell.release();
  name(channel_doorbell_fd_env, doorbell);
  name(channel_master_doorbell_fd_env, doorbell);
  EXPECT_THAT(refusal(), ::testing::HasSubstr("which another channel variable names too"));
}

// ---- fork_server -------------------------------------------------------------------------------

using ForkServer = ProcessTest;

TEST_F(ForkServer, ForksAWorkerOfThisProcessAsItWasWithTheChannelAndStateOfAnExecdOne) {
  const auto forks = [this] {
    const master_signal_state signals;  // a master's, which the server copies, must not pass on
    return start_fork_server();
  }();
  ASSERT_TRUE(forks);

  const auto child =
      forks->spawn(worker_argv, {{"TEST_WORKER_MODE", "echo"}, {"TEST_PROBE", "from-extra"}});
  track(child.pid, child.channel_fd);
  EXPECT_NE(child.pid, forks->pid());
  EXPECT_NE(::fcntl(child.channel_fd, F_GETFD) & FD_CLOEXEC, 0) << "master end is close-on-exec";
  asio::io_context io;
  const auto hello = read_line(io, child.channel_fd);
  ASSERT_TRUE(hello) << "no hello from the worker";
  EXPECT_EQ(field(*hello, "pid"), std::to_string(child.pid));
  EXPECT_EQ(field(*hello, "marker"), "42") << "not forked from this process";
  EXPECT_EQ(field(*hello, "master"), std::to_string(::getpid()));
  EXPECT_EQ(field(*hello, "env"), "unset") << "take_channel_from_environment removes it";
  EXPECT_EQ(field(*hello, "probe"), "from-extra");
  expect_default_signals(*hello);

  ASSERT_TRUE(write_all(child.channel_fd, "ping\n"));
  EXPECT_EQ(read_line(io, child.channel_fd), "ping");
  // This process's own child, whose status it gets, though the server forked it.
  close_channel(child.pid);
  const auto status = wait_child(child.pid);
  ASSERT_TRUE(status) << "the worker is not this process's child, or did not exit";
  mark_reaped(child.pid);
  EXPECT_TRUE(exited_with(*status, 0)) << "a worker exits when its channel closes";
  forks->forget(child.pid);
}

TEST_F(ForkServer, ForksAWorkerWithNoVariableToAdd) {
  const auto forks = start_fork_server();
  ASSERT_TRUE(forks);
  for (int i = 0; i < 2; ++i) {
    const auto child = forks->spawn(worker_argv, {});
    track(child.pid, child.channel_fd);
    asio::io_context io;
    const auto hello = read_line(io, child.channel_fd);
    ASSERT_TRUE(hello);
    EXPECT_EQ(field(*hello, "marker"), "42") << "worker " << i << " was not forked";
  }
}

TEST_F(ForkServer, DoesNotStartWhileAnotherThreadRuns) {
  std::promise<void> done;
  std::thread other([ended = done.get_future()] { ended.wait(); });
  std::string why_not;
  const auto forks = fork_server::start(why_not);
  done.set_value();
  other.join();
  if (!forks && std::getenv(channel_fd_env) != nullptr) ::_exit(run_worker());
  EXPECT_FALSE(forks);
  EXPECT_THAT(why_not, ::testing::HasSubstr("2 threads run in this process"));
}

TEST_F(ForkServer, ExecsWorkersOnceTheServerHasDiedAndReapsIt) {
  const auto forks = start_fork_server();
  ASSERT_TRUE(forks);
  ASSERT_EQ(::kill(forks->pid(), SIGKILL), 0);
  const auto child = forks->spawn(worker_argv, {{"TEST_WORKER_MODE", "echo"}});
  track(child.pid, child.channel_fd);
  asio::io_context io;
  const auto hello = read_line(io, child.channel_fd);
  ASSERT_TRUE(hello) << "no worker after the server died";
  EXPECT_EQ(field(*hello, "marker"), "0") << "not exec'd";

  ASSERT_TRUE(run_until(io, [&] {
    forks->reap_strays();
    return !read_proc_stat(forks->pid());
  })) << "the dead server was not reaped";
}

TEST_F(ForkServer, ReapsTheOrphansOfItsWorkers) {
  const auto forks = start_fork_server();
  ASSERT_TRUE(forks);
  const auto child = forks->spawn(worker_argv, {{"TEST_WORKER_MODE", "orphan"}});
  track(child.pid, child.channel_fd);
  asio::io_context io;
  const auto hello = read_line(io, child.channel_fd);
  ASSERT_TRUE(hello);
  const pid_t orphan = std::stoi(field(*hello, "orphan"));
  ASSERT_GT(orphan, 0);
  const auto status = wait_child(child.pid);
  ASSERT_TRUE(status);
  mark_reaped(child.pid);
  forks->forget(child.pid);
  // The worker's child is this process's now: left unreaped, it would stay a zombie.
  ASSERT_TRUE(run_until(io, [&] {
    const auto stat = read_proc_stat(orphan);
    return stat && stat->parent == ::getpid();
  })) << "the orphan did not come to this process";
  forks->reap_strays();
  ASSERT_TRUE(read_proc_stat(orphan)) << "a live orphan was reaped";
  ASSERT_EQ(::kill(orphan, SIGKILL), 0);
  ASSERT_TRUE(run_until(io, [&] {
    forks->reap_strays();
    return !read_proc_stat(orphan);
  })) << "the orphan was left a zombie";
}

TEST_F(ForkServer, StartsASupervisorsWorkersWhichItWaitsForAndRespawns) {
  ASSERT_TRUE(start_fork_server());
  auto& sup = make_supervisor(2, fast_policy(),
                              {{"TEST_WORKER_MODE", "echo"}, {"TEST_WORKER_MODE_1", "crash"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return exits_in(1) >= 2; })) << "slot 1 was not respawned";
  for (const auto& e : exits_)
    EXPECT_TRUE(exited_with(e.status, 3)) << "slot " << e.slot << ": the worker's own status";
  const auto first =
      std::find_if(spawns_.begin(), spawns_.end(), [](const event& e) { return e.slot == 0; });
  ASSERT_NE(first, spawns_.end());
  const auto hello = read_line(io_, channel_of(first->pid));
  ASSERT_TRUE(hello);
  EXPECT_EQ(field(*hello, "marker"), "42") << "slot 0 was not forked";
  EXPECT_EQ(exits_in(0), 0u);
}

// ---- supervisor --------------------------------------------------------------------------------

using Supervisor = ProcessTest;

TEST_F(Supervisor, StartsEverySlotWithItsOwnChannel) {
  auto& sup = make_supervisor(2, fast_policy(), {{"TEST_WORKER_MODE", "echo"}});
  sup.start();
  // posix_spawn waits for the child's exec, which on a busy machine waits for a core: start()
  // never waits with it, and each worker is adopted from the loop once it runs.
  EXPECT_TRUE(spawns_.empty()) << "start() returned only once a worker had started";
  ASSERT_TRUE(run_until(io_, [&] { return spawns_.size() == 2; })) << "start() spawns every slot";
  for (const auto& s : spawns_) {
    const auto hello = read_line(io_, channel_of(s.pid));
    ASSERT_TRUE(hello) << "slot " << s.slot;
    EXPECT_EQ(field(*hello, "pid"), std::to_string(s.pid));
    EXPECT_EQ(field(*hello, "slot"), std::to_string(s.slot));
    EXPECT_EQ(field(*hello, "fds"), "0,1,2,3") << "no channel of another worker, no master fd";
    const std::string ping = "ping " + std::to_string(s.slot) + "\n";
    ASSERT_TRUE(write_all(channel_of(s.pid), ping));
    EXPECT_EQ(read_line(io_, channel_of(s.pid)), ping.substr(0, ping.size() - 1));
  }
  auto live = sup.live_pids();
  std::sort(live.begin(), live.end());
  std::vector<pid_t> expected{spawns_[0].pid, spawns_[1].pid};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(live, expected);
}

TEST_F(Supervisor, RespawnsACrashedWorkerWithGrowingDelays) {
  auto policy = fast_policy();
  policy.initial_delay = 20ms;
  policy.crash_loop_exits = 0;  // never give up here
  auto& sup = make_supervisor(1, policy, {{"TEST_WORKER_MODE", "crash"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return spawns_.size() >= 5; }));
  ASSERT_GE(exits_.size(), 4u);
  auto expected = 20ms;
  for (std::size_t k = 0; k < 4; ++k, expected *= 2) {
    EXPECT_EQ(exits_[k].pid, spawns_[k].pid);
    EXPECT_TRUE(exited_with(exits_[k].status, 3)) << "exit " << k << " status " << exits_[k].status;
    const auto gap = spawns_[k + 1].at - exits_[k].at;
    EXPECT_GE(gap, expected) << "respawn " << k + 1 << " came too early";
  }
  EXPECT_TRUE(gave_up_.empty());
}

TEST_F(Supervisor, GivesUpOnACrashLoopingSlotAndSaysWhy) {
  auto& sup = make_supervisor(2, fast_policy(),
                              {{"TEST_WORKER_MODE", "block"}, {"TEST_WORKER_MODE_1", "crash"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return !gave_up_.empty(); }));
  EXPECT_EQ(gave_up_[0].first, 1u);
  EXPECT_THAT(gave_up_[0].second,
              ::testing::HasSubstr("worker slot 1 exited 5 times in 2 s; not restarting it"));
  EXPECT_EQ(exits_in(1), 5u);
  EXPECT_EQ(exits_in(0), 0u) << "the healthy slot is untouched";
  ASSERT_EQ(sup.live_pids().size(), 1u);
  EXPECT_EQ(sup.live_pids()[0], spawns_[0].pid);

  // Nothing more happens to slot 1 (a negative check, so a short fixed wait is the point).
  const auto spawns_then = spawns_.size();
  io_.run_for(300ms);
  EXPECT_EQ(spawns_.size(), spawns_then);
  EXPECT_EQ(gave_up_.size(), 1u);
}

TEST_F(Supervisor, LeavesChildrenItDidNotStartToTheirOwner) {
  // The embedding application's own child, exited before the supervisor's SIGCHLDs come.
  const auto own = spawn_worker(worker_argv, {{"TEST_WORKER_MODE", "crash"}});
  track(own.pid, own.channel_fd);
  ASSERT_TRUE(run_until(io_, [&] {
    siginfo_t info{};
    return ::waitid(P_PID, own.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0;
  }));

  auto& sup = make_supervisor(1, fast_policy(), {{"TEST_WORKER_MODE", "crash"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return exits_.size() >= 2; }));
  int status = 0;
  EXPECT_EQ(::waitpid(own.pid, &status, WNOHANG), own.pid) << "the supervisor reaped it";
  mark_reaped(own.pid);
  EXPECT_TRUE(exited_with(status, 3));
}

TEST_F(Supervisor, StopTerminatesEveryWorkerAndThenCallsDone) {
  auto& sup = make_supervisor(3, fast_policy(), {{"TEST_WORKER_MODE", "block"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return spawns_.size() == 3u; }));
  for (const auto& s : spawns_) ASSERT_TRUE(read_line(io_, channel_of(s.pid)));
  bool done = false;
  sup.stop(5s, [&] { done = true; });
  EXPECT_FALSE(done) << "done runs from the executor, not inside stop()";
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
  ASSERT_EQ(exits_.size(), 3u);
  for (const auto& e : exits_) EXPECT_TRUE(killed_by(e.status, SIGTERM)) << e.status;
  EXPECT_TRUE(sup.live_pids().empty());
  EXPECT_EQ(spawns_.size(), 3u) << "no respawn while stopping";
}

TEST_F(Supervisor, StopKillsAWorkerThatIgnoresTermAfterTheGrace) {
  auto& sup = make_supervisor(1, fast_policy(), {{"TEST_WORKER_MODE", "ignore_term"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return spawns_.size() == 1u; }));
  ASSERT_TRUE(read_line(io_, channel_of(spawns_.at(0).pid))) << "SIGTERM is ignored from now on";
  bool done = false;
  const auto stopped_at = steady::now();
  sup.stop(200ms, [&] { done = true; });
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
  EXPECT_GE(steady::now() - stopped_at, 200ms);
  ASSERT_EQ(exits_.size(), 1u);
  EXPECT_TRUE(killed_by(exits_[0].status, SIGKILL)) << exits_[0].status;
}

// Children of this process not yet reaped (zombies included), whichever thread started them.
std::size_t unreaped_children() {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream children(task.path() / "children");
    for (pid_t pid; children >> pid;) ++n;
  }
  return n;
}

TEST_F(Supervisor, StopWhileWorkersStartEndsThemBeforeDone) {
  auto& sup = make_supervisor(2, fast_policy(), {{"TEST_WORKER_MODE", "block"}});
  sup.start();
  bool done = false;
  sup.stop(5s, [&] { done = true; });
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
  EXPECT_TRUE(spawns_.empty()) << "a worker that started after stop() is not adopted";
  EXPECT_TRUE(exits_.empty()) << "nor reported as an exit, never having been adopted";
  EXPECT_EQ(unreaped_children(), 0u) << "done came before every worker started was reaped";
}

TEST_F(Supervisor, StopWithNoLiveWorkerPostsDone) {
  auto& sup = make_supervisor(2, fast_policy(), {});
  bool done = false;
  sup.stop(1s, [&] { done = true; });
  EXPECT_FALSE(done);
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
  sup.start();  // after stop: spawns nothing
  EXPECT_TRUE(spawns_.empty());
}

TEST_F(Supervisor, StopCancelsAPendingRespawn) {
  auto policy = fast_policy();
  policy.initial_delay = 300ms;
  auto& sup = make_supervisor(1, policy, {{"TEST_WORKER_MODE", "crash"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return exits_.size() == 1; }));
  bool done = false;
  sup.stop(1s, [&] { done = true; });
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
  io_.run_for(500ms);  // past the respawn delay: negative check
  EXPECT_EQ(spawns_.size(), 1u);
}

TEST_F(Supervisor, AWorkerExitsWhenItsChannelClosesAndIsRespawned) {
  auto& sup = make_supervisor(1, fast_policy(), {{"TEST_WORKER_MODE", "block"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return spawns_.size() == 1u; }));
  const pid_t first = spawns_.at(0).pid;
  ASSERT_TRUE(read_line(io_, channel_of(first)));
  close_channel(first);
  ASSERT_TRUE(run_until(io_, [&] { return spawns_.size() == 2; }));
  ASSERT_EQ(exits_.size(), 1u);
  EXPECT_EQ(exits_[0].pid, first);
  EXPECT_TRUE(exited_with(exits_[0].status, 0)) << exits_[0].status;
  EXPECT_NE(spawns_[1].pid, first);
  EXPECT_EQ(spawns_[1].slot, 0u);
  EXPECT_EQ(sup.live_pids(), std::vector<pid_t>{spawns_[1].pid});
}

// kill() and await_exit() serve the host's router (a silent worker ended, a closed channel's
// exit status named): only live workers of ours are signalled, and each wait ends exactly once.
TEST_F(Supervisor, KillEndsOnlyALiveWorkerOfItsOwnAndItIsRestarted) {
  auto& sup = make_supervisor(1, fast_policy(), {{"TEST_WORKER_MODE", "block"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return spawns_.size() == 1u; }));
  const pid_t first = spawns_.at(0).pid;
  EXPECT_FALSE(sup.kill(::getpid())) << "not a worker of ours";
  EXPECT_FALSE(sup.kill(0));
  ASSERT_TRUE(sup.kill(first));
  ASSERT_TRUE(run_until(io_, [&] { return spawns_.size() == 2; }));
  ASSERT_EQ(exits_.size(), 1u);
  EXPECT_TRUE(WIFSIGNALED(exits_[0].status) && WTERMSIG(exits_[0].status) == SIGKILL);
  EXPECT_FALSE(sup.kill(first)) << "reaped: its pid may belong to anyone now";
}

TEST_F(Supervisor, AwaitExitNamesTheStatusWhenTheWorkerIsReapedOrAtOnceIfItWas) {
  auto& sup = make_supervisor(1, fast_policy(), {{"TEST_WORKER_MODE", "block"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return spawns_.size() == 1u; }));
  const pid_t first = spawns_.at(0).pid;
  std::vector<int> before;
  sup.await_exit(first, 10s, [&](int status) { before.push_back(status); });
  EXPECT_TRUE(before.empty()) << "still running";
  ASSERT_EQ(::kill(first, SIGKILL), 0);  // live and unreaped: ours
  ASSERT_TRUE(run_until(io_, [&] { return !before.empty(); }));
  ASSERT_EQ(before.size(), 1u);
  EXPECT_TRUE(WIFSIGNALED(before[0]) && WTERMSIG(before[0]) == SIGKILL) << before[0];

  // Reaped already: told inside the call.
  std::vector<int> after;
  sup.await_exit(first, 10s, [&](int status) { after.push_back(status); });
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0], before[0]);
  // Never ours: unknown, at once.
  std::vector<int> stranger;
  sup.await_exit(::getpid(), 10s, [&](int status) { stranger.push_back(status); });
  EXPECT_EQ(stranger, std::vector<int>{-1});
  // Each wait ended once: nothing more comes (a short run is the point of this check).
  io_.run_for(100ms);
  EXPECT_EQ(before.size(), 1u);
}

TEST_F(Supervisor, AwaitExitGivesUpAfterItsWindowWithMinusOne) {
  auto& sup = make_supervisor(1, fast_policy(), {{"TEST_WORKER_MODE", "block"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return spawns_.size() == 1u; }));
  const pid_t first = spawns_.at(0).pid;
  std::vector<int> told;
  const auto asked = steady::now();
  sup.await_exit(first, 50ms, [&](int status) { told.push_back(status); });
  ASSERT_TRUE(run_until(io_, [&] { return !told.empty(); }));
  EXPECT_GE(steady::now() - asked, 50ms);
  EXPECT_EQ(told, std::vector<int>{-1});
  EXPECT_EQ(sup.live_pids(), std::vector<pid_t>{first}) << "waiting does nothing to the worker";
}

TEST_F(Supervisor, DestroyingItWithARespawnPendingLeavesNothingBehind) {
  auto policy = fast_policy();
  policy.initial_delay = 100ms;
  auto& sup = make_supervisor(1, policy, {{"TEST_WORKER_MODE", "crash"}});
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return exits_.size() == 1; }));
  sup_.reset();
  io_.run_for(300ms);  // the respawn would have been due
  EXPECT_EQ(spawns_.size(), 1u);
  EXPECT_TRUE(io_.stopped()) << "work left pending on the executor";
}

TEST_F(Supervisor, DestroyingItFromItsOwnCallbackIsSafe) {
  auto& sup = make_supervisor(2, fast_policy(), {{"TEST_WORKER_MODE", "crash"}});
  std::size_t spawns_then = 0;
  on_exit_ = [&] {
    spawns_then = spawns_.size();
    sup_.reset();
  };
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return !exits_.empty(); }));
  io_.run_for(200ms);  // whatever was pending must find the state gone
  EXPECT_EQ(exits_.size(), 1u) << "no callback after destruction";
  EXPECT_EQ(spawns_.size(), spawns_then) << "a spawn in progress is not adopted after it";
  EXPECT_TRUE(io_.stopped()) << "work left pending on the executor";
}

TEST_F(Supervisor, DestroyingItFromTheSpawnedCallbackIsSafe) {
  // The other slots' spawns are queued or in progress then: dropped, or their workers never
  // adopted (their channels closed, they exit).
  auto& sup = make_supervisor(3, fast_policy(), {{"TEST_WORKER_MODE", "block"}});
  on_spawn_ = [&] { sup_.reset(); };
  sup.start();
  ASSERT_TRUE(run_until(io_, [&] { return !spawns_.empty(); }));
  io_.run_for(200ms);
  EXPECT_EQ(spawns_.size(), 1u) << "no worker adopted after destruction";
  EXPECT_TRUE(exits_.empty());
  EXPECT_TRUE(io_.stopped()) << "work left pending on the executor";
}

}  // namespace
}  // namespace galaxies::process

int main(int argc, char** argv) {
  if (std::getenv(galaxies::process::channel_fd_env) != nullptr) {
    return galaxies::process::run_worker();
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
