#include "support/isolation.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "support/netns.hpp"

namespace galaxies::test::netns {
namespace {

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

void run_isolated(int argc, char** argv, const isolation_options& options) {
  if (listing_only(argc, argv)) return;
  if (std::getenv(isolation_marker_env) == nullptr) {
    std::vector<std::string> tools{"unshare"};
    tools.insert(tools.end(), options.tools.begin(), options.tools.end());
    std::string problem = environment_problem(tools);
    if (problem.empty() && !can_unshare()) problem = "'unshare --net' is not permitted here";
    if (problem.empty()) problem = reexec_isolated(argc, argv);
    std::fprintf(stderr, "[%s] every test skips: %s\n", options.name.c_str(), problem.c_str());
    set_unavailable_reason(problem);
    return;
  }
  verify_isolated();  // aborts unless alone in a namespace with no route anywhere
  remove_stale_namespaces();
  if (options.loopback_up) {
    const auto r = run_command({"ip", "link", "set", "lo", "up"});
    if (r.status != 0) {
      // Root in a namespace of its own and still refused: nothing a skip would explain.
      std::fprintf(stderr, "[%s] cannot bring lo up in the test's namespace: %s\n",
                   options.name.c_str(), r.output.c_str());
      std::fflush(stderr);
      std::abort();
    }
  }
}

}  // namespace galaxies::test::netns
