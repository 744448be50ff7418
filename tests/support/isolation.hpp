// Running a whole test binary in a fresh network namespace with no route off the machine (the
// SAFETY RULE of the test hosts; tests/support/netns.hpp tells how the isolation is checked).
// Called first thing in main():
//  - Not yet isolated: re-executes this binary in place, same argv (ctest's --gtest_filter keeps
//    working), as `unshare --net -- /proc/self/exe ARGS...`, with the isolation marker in the
//    environment holding the original namespace's inode. Does not return.
//  - Isolated: checks it (aborts loudly if not), deletes namespaces left by crashed runs, brings
//    `lo` up when asked, and returns.
//  - Not root, a tool missing, or unshare refused: returns, and unavailable_reason() says why;
//    every test must then skip with it.
// Listing the tests (gtest_discover_tests at build time) needs none of this: it returns at once.
#pragma once

#include <string>
#include <vector>

namespace galaxies::test::netns {

struct isolation_options {
  std::string name;                // of the suite, in messages: "fault", "web view"
  std::vector<std::string> tools;  // needed in PATH besides `unshare`, e.g. {"ip", "iptables"}
  // A fresh namespace's loopback is down: tests that talk to 127.0.0.1 need it up.
  bool loopback_up = false;
};

void run_isolated(int argc, char** argv, const isolation_options& options);

}  // namespace galaxies::test::netns
