// An application's own logging survives galaxies::run(), in the master and in its workers: its
// spdlog default logger is used as the application set it up, and options::log_sink gets every
// record as plain data; nothing of galaxies' own then goes to stderr. This binary is also the
// application (run() re-executes it for the workers): main() plays it when APP_LOG_MODE is set.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "galaxies/galaxies.hpp"

extern char** environ;

namespace {

using namespace std::chrono_literals;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// ---- the application ---------------------------------------------------------------------------

int run_application(int argc, char** argv) {
  const std::string mode = env("APP_LOG_MODE");
  const std::string dir = env("APP_DIR");
  galaxies::options opts;
  opts.workers = 1;
  opts.cluster = "applog";
  opts.registry = "file:" + dir + "/registry";
  opts.unix_path = dir + "/master.sock";
  opts.log_level = "debug";  // theirs decides with spdlog; the sink's filter otherwise
  if (mode == "spdlog") {
    auto logger = std::make_shared<spdlog::logger>(
        "app", std::make_shared<spdlog::sinks::basic_file_sink_mt>(dir + "/app.log"));
    logger->set_pattern("app-spdlog %P %v");
    logger->set_level(spdlog::level::debug);
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  } else {
    // One write per record on an O_APPEND file: master and worker lines never interleave.
    const int fd =
        ::open((dir + "/app.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    opts.log_sink = [fd](const galaxies::log_record& r) {
      std::string line = "app-sink " + std::string(r.role) + " " +
                         std::string(galaxies::to_string(r.level)) + " " + std::to_string(r.pid) +
                         " " + std::string(r.text) + "\n";
      (void)!::write(fd, line.data(), line.size());
    };
  }
  return galaxies::run(argc, argv, opts, [](galaxies::node&) {});
}

// ---- the test ----------------------------------------------------------------------------------

bool eventually(std::chrono::milliseconds deadline, const std::function<bool()>& pred) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class AppLogging : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/galaxies-applog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (pid_ > 0) {  // a failed test: ours, not yet reaped, so never a recycled pid
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }

  // Starts the application with stderr to a file; its pid.
  void start(const std::string& mode) {
    std::vector<std::string> vars = {"APP_LOG_MODE=" + mode, "APP_DIR=" + dir_.string()};
    for (char** e = environ; *e != nullptr; ++e) vars.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& v : vars) envp.push_back(v.data());
    envp.push_back(nullptr);
    std::string self = std::filesystem::read_symlink("/proc/self/exe");
    char* argv[] = {self.data(), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, (dir_ / "stderr").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_EQ(::posix_spawn(&pid_, self.c_str(), &actions, nullptr, argv, envp.data()), 0);
    posix_spawn_file_actions_destroy(&actions);
  }

  // SIGTERM, and its exit code once it exited (the master waits for its workers first).
  int stop() {
    ::kill(pid_, SIGTERM);
    int status = -1;
    const bool reaped = eventually(20s, [&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; });
    if (!reaped) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

TEST_P(AppLogging, MasterAndWorkerLogThroughTheApplicationsChoice) {
  const std::string prefix = "app-" + GetParam() + " ";
  start(GetParam());
  const pid_t master = pid_;
  const auto log = [&] { return read_file(dir_ / "app.log"); };
  ASSERT_TRUE(eventually(20s, [&] { return log().find(" joined (pid ") != std::string::npos; }))
      << log() << read_file(dir_ / "stderr");
  ASSERT_EQ(stop(), 0) << read_file(dir_ / "stderr");

  // Every line is the application's; master and worker both wrote (a worker logs its channel's
  // close at debug when it stops).
  std::map<pid_t, int> lines_by_pid;
  std::istringstream lines(log());
  for (std::string line; std::getline(lines, line);) {
    ASSERT_EQ(line.rfind(prefix, 0), 0u) << line;
    std::istringstream fields(line.substr(prefix.size()));
    std::string role, level;
    pid_t pid = 0;
    if (GetParam() == "sink") {
      fields >> role >> level;
      EXPECT_TRUE(role == "master" || role == "worker") << line;
      EXPECT_TRUE(level == "debug" || level == "info" || level == "warn") << line;
    }
    fields >> pid;
    if (GetParam() == "sink") {
      EXPECT_EQ(role == "master", pid == master) << line;
    }
    ++lines_by_pid[pid];
  }
  EXPECT_GT(lines_by_pid[master], 0);
  EXPECT_EQ(lines_by_pid.size(), 2u) << "the master and its one worker:\n" << log();
  EXPECT_EQ(read_file(dir_ / "stderr"), "") << "galaxies wrote to stderr itself";
}

INSTANTIATE_TEST_SUITE_P(Modes, AppLogging, ::testing::Values("spdlog", "sink"));

}  // namespace

int main(int argc, char** argv) {
  if (!env("APP_LOG_MODE").empty()) return run_application(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
