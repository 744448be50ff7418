// Local access to a master: it refuses to start in a runtime directory (or an explicit socket
// directory) that other users could write, creates its own private, and closes at once a Unix
// connection from another uid. Real `galaxies host` processes; XDG_RUNTIME_DIR always points
// into a temp dir, never at the real one; every process is stopped by PID with bounded waits.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "support/cluster.hpp"
#include "support/eventually.hpp"
#include "support/host_tools.hpp"

namespace galaxies::test {
namespace {

namespace fs = std::filesystem;

constexpr uid_t nobody = 65534;
// A master that refuses to start exits at once; one that starts is up within seconds even on a
// loaded machine.
constexpr auto exit_deadline = 20s;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

mode_t mode_of(const fs::path& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

// The exit status once `pid` exited, or nullopt if it is still running after `deadline`.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds deadline) {
  int status = 0;
  const bool exited = eventually(deadline, [&] { return ::waitpid(pid, &status, WNOHANG) == pid; });
  return exited ? std::optional<int>(status) : std::nullopt;
}

// One `galaxies host` with no worker, its stderr in a file; stopped by PID when it goes.
class lone_master {
 public:
  lone_master(const fs::path& dir, std::vector<std::string> args,
              std::vector<std::string> environment)
      : log_(dir / "master.log") {
    tools::unique_fd log(::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    std::vector<std::string> argv{cli_path(), "host",        "--workers", "0",
                                  "--listen", "127.0.0.1:0", "--cluster", "local"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = tools::spawn(argv, log.get(), log.get(), environment);
  }
  ~lone_master() {
    if (status_) return;
    ::kill(pid_, SIGTERM);
    if (!wait_exit(pid_, 10s)) {
      ::kill(pid_, SIGKILL);
      wait_exit(pid_, 5s);
    }
  }

  // The exit status, if it exited within `deadline`.
  std::optional<int> exited(std::chrono::milliseconds deadline) {
    if (!status_) status_ = wait_exit(pid_, deadline);
    return status_;
  }
  std::string log() const { return read_file(log_); }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

bool failed(const std::optional<int>& status) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) != 0;
}

TEST(LocalAccess, AMasterRefusesAWorldWritableRuntimeDirectory) {
  temp_dir dir;
  const auto runtime = dir.path() / "galaxies";
  ASSERT_EQ(::mkdir(runtime.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(runtime.c_str(), 0777), 0);  // pre-created by someone else's mistake

  lone_master master(dir.path(), {}, {"XDG_RUNTIME_DIR=" + dir.path().string()});
  const auto status = master.exited(exit_deadline);
  ASSERT_TRUE(status) << "still running with a world-writable runtime directory\n" << master.log();
  EXPECT_TRUE(failed(status)) << master.log();
  const auto log = master.log();
  EXPECT_NE(log.find(runtime.string()), std::string::npos) << log;
  EXPECT_NE(log.find("0777"), std::string::npos) << log;
  EXPECT_NE(log.find("chmod 700 " + runtime.string()), std::string::npos) << log;
  EXPECT_TRUE(fs::is_empty(runtime)) << "no socket and no registry file left in it";
  EXPECT_EQ(mode_of(runtime), 0777u) << "its mode is the user's to fix, not silently changed";
}

TEST(LocalAccess, AnOlderVersionsRegistryFileBesideTheDefaultIsNamedAndLeftAlone) {
  temp_dir dir;
  const auto runtime = dir.path() / "galaxies";
  ASSERT_EQ(::mkdir(runtime.c_str(), 0700), 0);
  const auto old_file = runtime / "local.registry.json";
  const std::string old_rows = R"({"hosts":[]})";
  std::ofstream(old_file) << old_rows;

  lone_master master(dir.path(), {}, {"XDG_RUNTIME_DIR=" + dir.path().string()});
  const auto warned = [&] {
    const auto log = master.log();
    return log.find(old_file.string() + " is the registry file of an older galaxies version") !=
           std::string::npos;
  };
  ASSERT_TRUE(eventually(exit_deadline, [&] { return warned() || master.exited(0ms); }))
      << master.log();
  EXPECT_TRUE(warned()) << master.log();
  EXPECT_FALSE(master.exited(0ms)) << "a warning, not a refusal\n" << master.log();
  EXPECT_EQ(read_file(old_file), old_rows) << "the old file is the user's to remove";
}

TEST(LocalAccess, AMasterCreatesItsRuntimeDirectoryPrivate) {
  temp_dir dir;
  const auto runtime = dir.path() / "galaxies";
  lone_master master(dir.path(), {}, {"XDG_RUNTIME_DIR=" + dir.path().string()});

  // Up once its socket and its registry row file are there.
  const auto socket_in = [&]() -> std::optional<fs::path> {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(runtime, ec))
      if (entry.path().extension() == ".sock") return entry.path();
    return std::nullopt;
  };
  const auto registry = runtime / "local.registry";
  const auto row_in = [&]() -> std::optional<fs::path> {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(registry, ec))
      if (entry.path().extension() == ".json") return entry.path();
    return std::nullopt;
  };
  ASSERT_TRUE(eventually(exit_deadline, [&] {
    return (socket_in() && row_in()) || master.exited(0ms).has_value();
  })) << master.log();
  ASSERT_FALSE(master.exited(0ms)) << master.log();
  EXPECT_EQ(mode_of(runtime), 0700u);
  EXPECT_EQ(mode_of(*socket_in()), 0600u);
  EXPECT_EQ(mode_of(registry), 0700u);
  EXPECT_EQ(mode_of(*row_in()), 0600u);
}

TEST(LocalAccess, AnExplicitSocketInADirectoryOthersCanWriteIsRefused) {
  temp_dir dir;
  const auto open_dir = dir.path() / "open";
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  const auto socket_path = (open_dir / "h.sock").string();
  std::ofstream(socket_path) << "someone else's";
  lone_master master(
      dir.path(),
      {"--unix", socket_path, "--registry", "file:" + (dir.path() / "registry").string()}, {});
  const auto status = master.exited(exit_deadline);
  ASSERT_TRUE(status) << master.log();
  EXPECT_TRUE(failed(status)) << master.log();
  EXPECT_NE(master.log().find(open_dir.string()), std::string::npos) << master.log();
  EXPECT_TRUE(fs::exists(socket_path)) << "what the master did not create, it leaves alone";
}

// Any process may choose its name; this one would clear a terminal if a log printed it raw.
constexpr char hostile_name[] = "gx\x1b[2Jpeer";

// In a child of this (threaded) process: raw system calls only, then _exit. 0: the master closed
// the connection; anything else says which step failed.
[[noreturn]] void connect_as_nobody(const std::string& unix_path) {
  if (::syscall(SYS_prctl, PR_SET_NAME, hostile_name, 0, 0, 0) != 0 ||
      ::syscall(SYS_setgroups, 0, nullptr) != 0 ||
      ::syscall(SYS_setresgid, nobody, nobody, nobody) != 0 ||
      ::syscall(SYS_setresuid, nobody, nobody, nobody) != 0)
    ::_exit(10);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, unix_path.data(), unix_path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    ::_exit(11);
  pollfd p{fd, POLLIN, 0};
  // Well below the handshake timeout (5 s), which would close an idle connection anyway.
  if (::poll(&p, 1, 2500) <= 0) ::_exit(12);
  char byte = 0;
  const ssize_t n = ::read(fd, &byte, 1);
  ::_exit(n == 0 || (n < 0 && errno == ECONNRESET) ? 0 : 13);
}

TEST(LocalAccess, AConnectionFromAnotherUidIsClosedAtOnce) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user (uid 65534)";
  cluster c("local");
  auto& h = c.add_host(with_workers(1));
  ASSERT_EQ(h.wait_started(1).size(), 1u) << h.log();
  // The socket's mode and its private directory keep other users out already; loosened here so
  // that the connection reaches the check behind them (SO_PEERCRED).
  ASSERT_EQ(::chmod(c.dir().c_str(), 0711), 0);
  ASSERT_EQ(::chmod(h.unix_path().c_str(), 0666), 0);

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) connect_as_nobody(h.unix_path());
  auto status = wait_exit(child, exit_deadline);
  if (!status) {
    ::kill(child, SIGKILL);
    status = wait_exit(child, 5s);
    FAIL() << "the child did not finish";
  }
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0) << "10: prctl/setuid, 11: connect, 12: not closed, 13: data";
  ASSERT_TRUE(eventually(5s, [&] {
    return h.log().find("unix connection refused") != std::string::npos;
  })) << h.log();
  // The line names who was refused, the name escaped.
  const auto log = h.log();
  const auto from = log.find("unix connection refused");
  const auto line = log.substr(from, log.find('\n', from) - from);
  EXPECT_NE(line.find("pid " + std::to_string(child)), std::string::npos) << line;
  EXPECT_NE(line.find("uid 65534"), std::string::npos) << line;
  EXPECT_NE(line.find("gx\\x1b[2Jpeer"), std::string::npos) << line;
  EXPECT_EQ(line.find('\x1b'), std::string::npos) << "no raw escape reaches the log";

  EXPECT_FALSE(h.status().is_null()) << "our own uid is still served";
  EXPECT_EQ(h.started_nodes().size(), 1u);
}

}  // namespace
}  // namespace galaxies::test
