// event_log_check: runs the event-log checker over a directory of chatter logs (a fault test's
// kept directory: GALAXIES_TEST_KEEP_DIRS=1, or any failed run) and prints every violation.
//
//   event_log_check /tmp/gxfXXXXXX/logs [--drained] [--same-views]
//
// Exit code 0 when the history is clean, 1 when it is not, 2 on bad usage.
#include <cstdio>
#include <cstring>

#include "event_log_checker.hpp"

int main(int argc, char** argv) {
  galaxies::test::fault::check_options options;
  options.max_violations = 1000;
  const char* dir = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--drained") == 0) {
      options.require_drained = true;
    } else if (std::strcmp(argv[i], "--same-views") == 0) {
      options.require_same_views = true;
    } else if (!dir && argv[i][0] != '-') {
      dir = argv[i];
    } else {
      dir = nullptr;
      break;
    }
  }
  if (!dir) {
    std::fprintf(stderr, "usage: event_log_check LOG_DIR [--drained] [--same-views]\n");
    return 2;
  }
  galaxies::test::fault::log_set logs(dir);
  logs.refresh();
  std::size_t records = 0;
  for (const auto& n : logs.nodes()) records += n.records.size();
  const auto violations = galaxies::test::fault::check(logs, options);
  for (const auto& v : violations) std::printf("%s\n", v.c_str());
  std::printf("%zu node logs, %zu records, %zu violations\n", logs.nodes().size(), records,
              violations.size());
  return violations.empty() ? 0 : 1;
}
