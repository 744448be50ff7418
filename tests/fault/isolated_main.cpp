// The main of the fault tests: runs every test inside a fresh network namespace with no route
// off the machine (the SAFETY RULE; how it works is told at the top of tests/support/netns.hpp).
//  - Not yet isolated: re-execute this binary in place, same argv, as
//    `unshare --net -- /proc/self/exe ARGS...`, with the isolation marker in the environment
//    holding the original namespace's inode.
//  - Isolated: check it (abort loudly if not), delete namespaces left by crashed runs, run.
//  - Not root, a tool missing, or unshare refused: run anyway, and every test skips with why.
// Listing the tests (gtest_discover_tests at build time) needs none of this.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "support/netns.hpp"

namespace {

using namespace galaxies::test::netns;

bool listing_only(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]).starts_with("--gtest_list_tests")) return true;
  return false;
}

// Returns only when the re-execution could not happen, with the reason.
std::string reexec_isolated(int argc, char** argv) {
  struct stat st {};
  if (::stat("/proc/self/ns/net", &st) != 0) return "cannot read /proc/self/ns/net";
  char self[PATH_MAX] = {};
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "cannot read /proc/self/exe";
  const std::string marker = std::to_string(st.st_ino);
  ::setenv(isolation_marker_env, marker.c_str(), 1);
  std::vector<char*> args{const_cast<char*>("unshare"), const_cast<char*>("--net"),
                          const_cast<char*>("--"), self};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  std::fflush(nullptr);
  ::execvp("unshare", args.data());
  const std::string why = std::string("cannot exec unshare: ") + std::strerror(errno);
  ::unsetenv(isolation_marker_env);
  return why;
}

}  // namespace

int main(int argc, char** argv) {
  if (!listing_only(argc, argv)) {
    if (std::getenv(isolation_marker_env) == nullptr) {
      std::string problem = environment_problem();
      if (problem.empty() && !can_unshare()) problem = "'unshare --net' is not permitted here";
      if (problem.empty()) problem = reexec_isolated(argc, argv);
      std::fprintf(stderr, "[fault] every test skips: %s\n", problem.c_str());
      set_unavailable_reason(problem);
    } else {
      verify_isolated();  // aborts unless alone in a namespace with no route anywhere
      remove_stale_namespaces();
    }
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
