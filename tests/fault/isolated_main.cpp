// The main of the fault tests: every test runs inside a fresh network namespace with no route off
// the machine, or skips with the reason (support/isolation.hpp).
#include <gtest/gtest.h>

#include "support/isolation.hpp"

int main(int argc, char** argv) {
  galaxies::test::netns::run_isolated(argc, argv,
                                      {.name = "fault", .tools = {"ip", "iptables", "tc"}});
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
