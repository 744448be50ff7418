// The directories that hold a master's socket and registry: created private, refused when anyone
// else could write them, with a message that names the path, what was found and the fix. The
// wrong-owner cases need root (chown); elsewhere they skip and say why.
#include "base/private_directory.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

namespace galaxies::base {
namespace {

constexpr uid_t nobody = 65534;

class PrivateDirectory : public ::testing::Test {
 protected:
  PrivateDirectory() {
    char pattern[] = "/tmp/galaxies-dir-test-XXXXXX";
    if (!::mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
    root = pattern;
  }
  ~PrivateDirectory() override {
    std::error_code ignored;
    std::filesystem::remove_all(root, ignored);
  }

  // A directory under the test's root with exactly `mode` (umask does not apply to chmod).
  std::string make_dir(const std::string& name, mode_t mode) {
    const std::string dir = root + "/" + name;
    if (::mkdir(dir.c_str(), 0700) != 0 || ::chmod(dir.c_str(), mode) != 0)
      throw std::runtime_error("cannot make " + dir);
    return dir;
  }

  static mode_t mode_of(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
  }

  // The problem text when refused; nullopt when accepted.
  static std::optional<std::string> refusal(const std::string& dir) {
    std::string problem;
    if (ensure_private_directory(dir, problem)) return problem;
    EXPECT_TRUE(problem.empty()) << problem;
    return std::nullopt;
  }

  std::string root;
};

TEST_F(PrivateDirectory, AMissingDirectoryIsCreatedPrivate) {
  const std::string dir = root + "/galaxies";
  const auto saved = ::umask(0);  // the mode must not depend on a careful umask
  const auto refused = refusal(dir);
  ::umask(saved);
  EXPECT_FALSE(refused) << *refused;
  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_FALSE(refusal(dir)) << "and accepted as it is the next time";
}

TEST_F(PrivateDirectory, OursAndNotWritableByOthersIsAccepted) {
  EXPECT_FALSE(refusal(make_dir("a", 0700)));
  EXPECT_FALSE(refusal(make_dir("b", 0755))) << "others may look, not write";
  EXPECT_EQ(mode_of(root + "/b"), 0755u) << "left as it was";
}

TEST_F(PrivateDirectory, GroupOrWorldWritableIsRefusedWithTheFix) {
  for (const mode_t mode : {0770u, 0777u, 01777u, 0702u}) {
    const auto dir = make_dir("m" + std::to_string(mode), mode);
    const auto refused = refusal(dir);
    ASSERT_TRUE(refused) << std::oct << mode;
    EXPECT_NE(refused->find(dir), std::string::npos) << *refused;
    EXPECT_NE(refused->find("chmod 700 " + dir), std::string::npos) << *refused;
    char shown[8];
    std::snprintf(shown, sizeof shown, "%04o", static_cast<unsigned>(mode));
    EXPECT_NE(refused->find(shown), std::string::npos) << *refused;
    EXPECT_EQ(mode_of(dir), mode) << "never silently changed";
  }
}

TEST_F(PrivateDirectory, ASymbolicLinkOrAFileIsRefused) {
  const auto target = make_dir("target", 0700);
  const std::string link = root + "/link";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  const auto refused = refusal(link);
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->find("symbolic link"), std::string::npos) << *refused;

  const std::string file = root + "/file";
  std::ofstream(file) << "x";
  ASSERT_TRUE(refusal(file));
  EXPECT_NE(refusal(file)->find("not a directory"), std::string::npos);
}

TEST_F(PrivateDirectory, AParentOthersCanWriteIsRefusedUnlessSticky) {
  const auto open_parent = make_dir("open", 0777);
  const auto refused = refusal(open_parent + "/galaxies");
  ASSERT_TRUE(refused) << "they could rename our directory and put theirs in its place";
  EXPECT_NE(refused->find(open_parent), std::string::npos) << *refused;

  const auto sticky_parent = make_dir("sticky", 01777);  // like /tmp
  EXPECT_FALSE(refusal(sticky_parent + "/galaxies"));
}

TEST_F(PrivateDirectory, AnotherOwnerIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a directory to another user (chown)";
  const auto dir = make_dir("theirs", 0700);
  ASSERT_EQ(::chown(dir.c_str(), nobody, nobody), 0);
  const auto refused = refusal(dir);
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->find("uid 65534"), std::string::npos) << *refused;
  EXPECT_NE(refused->find(dir), std::string::npos) << *refused;

  const auto their_parent = make_dir("their-parent", 0755);
  ASSERT_EQ(::chown(their_parent.c_str(), nobody, nobody), 0);
  EXPECT_TRUE(refusal(their_parent + "/galaxies")) << "its owner could rename ours away";
}

TEST_F(PrivateDirectory, AChosenDirectoryIsRefusedOnlyWhenOthersCanReplaceItsEntries) {
  std::string problem;
  EXPECT_FALSE(check_chosen_directory(make_dir("c700", 0700), problem));
  EXPECT_TRUE(problem.empty());
  EXPECT_FALSE(check_chosen_directory(make_dir("c1777", 01777), problem)) << "sticky, like /tmp";
  const auto open_dir = make_dir("c777", 0777);
  EXPECT_TRUE(check_chosen_directory(open_dir, problem));
  EXPECT_NE(problem.find(open_dir), std::string::npos) << problem;
  EXPECT_NE(problem.find("0777"), std::string::npos) << problem;
  EXPECT_TRUE(check_chosen_directory(make_dir("c770", 0770), problem));
  EXPECT_TRUE(check_chosen_directory(root + "/missing", problem));
}

TEST_F(PrivateDirectory, AChosenDirectoryOfAnotherUserIsOnlyAWarning) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a directory to another user (chown)";
  std::string problem;
  const auto theirs = make_dir("c-theirs", 0755);
  ASSERT_EQ(::chown(theirs.c_str(), nobody, nobody), 0);
  EXPECT_FALSE(check_chosen_directory(theirs, problem)) << "the user's choice";
  EXPECT_NE(problem.find("uid 65534"), std::string::npos) << "but a warning: " << problem;
}

TEST_F(PrivateDirectory, RuntimeDirectoryFollowsXdgRuntimeDir) {
  const char* saved = std::getenv("XDG_RUNTIME_DIR");
  const std::optional<std::string> restore =
      saved ? std::optional<std::string>(saved) : std::nullopt;
  const std::string fallback = "/tmp/galaxies-" + std::to_string(::geteuid());

  ::setenv("XDG_RUNTIME_DIR", root.c_str(), 1);
  EXPECT_EQ(runtime_directory(), root + "/galaxies");
  ::setenv("XDG_RUNTIME_DIR", "relative/dir", 1);
  EXPECT_EQ(runtime_directory(), fallback) << "a relative value is ignored";
  ::setenv("XDG_RUNTIME_DIR", (root + "/missing").c_str(), 1);
  EXPECT_EQ(runtime_directory(), fallback);
  ::unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(runtime_directory(), fallback);

  if (restore) ::setenv("XDG_RUNTIME_DIR", restore->c_str(), 1);
}

}  // namespace
}  // namespace galaxies::base
