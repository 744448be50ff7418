// Workers run the master's own program: by its path while that path still names the running
// file (so that valgrind and profilers can follow them), by /proc/self/exe once it does not.
#include "process/self_executable.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace galaxies::process {
namespace {

class SelfExecutable : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/galaxies-self-exe-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "program").string();
    std::ofstream(path_) << "the running version";
    running_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(running_, 0);
  }
  void TearDown() override {
    if (running_ >= 0) ::close(running_);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::filesystem::path dir_;
  std::string path_;
  int running_ = -1;
};

TEST_F(SelfExecutable, ThePathWhileItNamesTheRunningFile) {
  EXPECT_EQ(executable_to_run(path_, running_), path_);
}

TEST_F(SelfExecutable, TheRunningFileOnceThePathNamesAnotherVersion) {
  const std::string next = (dir_ / "program.new").string();
  std::ofstream(next) << "the next version";
  std::filesystem::rename(next, path_);  // how an upgrade replaces a binary
  EXPECT_EQ(executable_to_run(path_, running_), "/proc/self/exe");
}

TEST_F(SelfExecutable, TheRunningFileOnceThePathIsGoneOrUnusable) {
  std::filesystem::remove(path_);
  EXPECT_EQ(executable_to_run(path_, running_), "/proc/self/exe") << "deleted";
  EXPECT_EQ(executable_to_run(path_ + " (deleted)", running_), "/proc/self/exe");
  EXPECT_EQ(executable_to_run("", running_), "/proc/self/exe");
  EXPECT_EQ(executable_to_run("program", running_), "/proc/self/exe") << "relative";
}

TEST(SelfExecutableOfThisProcess, IsThisTestBinaryByItsPath) {
  const std::string chosen = self_executable();
  EXPECT_EQ(chosen, std::filesystem::canonical("/proc/self/exe").string());
}

}  // namespace
}  // namespace galaxies::process
