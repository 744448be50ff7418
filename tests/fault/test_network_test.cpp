// The test hosts themselves: addresses reach each other over the bridge, each fault cuts what
// it says and heal() restores it, processes run inside their namespace and are stopped by PID,
// and nothing is left behind. A TCP connect (bash's /dev/tcp, inside a namespace) is the probe;
// delay_proxy, which accepts any connection, is the listener.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <set>
#include <thread>

#include "support/netns.hpp"

#ifndef GALAXIES_DELAY_PROXY_PATH
#error "GALAXIES_DELAY_PROXY_PATH must name the built delay_proxy (tests/fault/CMakeLists.txt)"
#endif

namespace galaxies::test::netns {
namespace {

constexpr int port = 7000;

class test_network_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!unavailable_reason().empty())
      GTEST_SKIP() << "fault tests need isolation: " << unavailable_reason();
    char pattern[] = "/tmp/gxnXXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Starts a listener on the host's address; waits until it is ready.
  process& listen(test_network& net, const std::string& host) {
    const auto log = dir_ / (host + ".listener.log");
    auto& p = net.spawn(host,
                        {GALAXIES_DELAY_PROXY_PATH, "--listen", net.address(host) + ":7000",
                         "--connect", "127.0.0.1:9", "--delay-ms", "0"},
                        {}, log);
    for (int i = 0; i < 500 && p.log().find("listening on") == std::string::npos; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_NE(p.log().find("listening on"), std::string::npos) << p.log();
    return p;
  }

  // True when a TCP connection from `from` to `to`'s listener is established within `limit`.
  static bool connects_within(test_network& net, const std::string& from, const std::string& to,
                              const char* limit) {
    const auto r =
        run_command({"ip", "netns", "exec", net.namespace_of(from), "timeout", limit, "bash", "-c",
                     "exec 3<>/dev/tcp/" + net.address(to) + "/" + std::to_string(port)});
    return r.status == 0;
  }
  // Reachable: given time even on a loaded machine. Cut: a dropped SYN never connects, so a
  // short wait proves it.
  static bool connects(test_network& net, const std::string& from, const std::string& to) {
    return connects_within(net, from, to, "5");
  }
  static bool cut(test_network& net, const std::string& from, const std::string& to) {
    return !connects_within(net, from, to, "0.7");
  }

  std::filesystem::path dir_;
};

TEST_F(test_network_test, hosts_reach_each_other_and_each_fault_cuts_what_it_says) {
  test_network net({"a", "b", "c"});
  EXPECT_EQ(net.address("c"), "10.77.0.3");
  for (const auto& h : net.hosts()) listen(net, h);

  EXPECT_TRUE(connects(net, "a", "b"));
  EXPECT_TRUE(connects(net, "b", "a"));
  EXPECT_TRUE(connects(net, "c", "a"));

  net.partition("a", "b");
  EXPECT_TRUE(cut(net, "a", "b"));
  EXPECT_TRUE(cut(net, "b", "a"));
  EXPECT_TRUE(connects(net, "a", "c"));
  EXPECT_TRUE(connects(net, "c", "b"));
  net.heal("a");
  EXPECT_TRUE(connects(net, "a", "b"));
  EXPECT_TRUE(connects(net, "b", "a"));

  // Packets a -> b dropped: no TCP handshake either way, but c is unaffected.
  net.partition_one_way("a", "b");
  EXPECT_TRUE(cut(net, "a", "b"));
  EXPECT_TRUE(connects(net, "c", "b"));
  net.heal("b");
  EXPECT_TRUE(connects(net, "a", "b"));

  net.link_down("c");
  EXPECT_TRUE(cut(net, "a", "c"));
  EXPECT_TRUE(cut(net, "c", "b"));
  net.heal("c");
  EXPECT_TRUE(connects(net, "a", "c"));
  EXPECT_TRUE(connects(net, "c", "b"));

  net.loss("b", 1.0);
  EXPECT_TRUE(cut(net, "a", "b"));
  net.heal("b");
  EXPECT_TRUE(connects(net, "a", "b"));

  net.rate_limit("a", "1mbit");
  EXPECT_NE(net.exec("a", {"tc", "qdisc", "show", "dev", "eth0"}).find("tbf"), std::string::npos);
  EXPECT_TRUE(connects(net, "a", "b"));
  net.heal("a");
  EXPECT_EQ(net.exec("a", {"tc", "qdisc", "show", "dev", "eth0"}).find("tbf"), std::string::npos);
}

TEST_F(test_network_test, processes_run_inside_and_everything_is_gone_after) {
  std::set<std::string> names;
  pid_t pid = 0;
  {
    test_network net({"x", "y"});
    for (const auto& h : net.hosts()) names.insert(net.namespace_of(h));
    auto& p = listen(net, "x");
    pid = p.pid();
    EXPECT_EQ(net.pids_in("x"), std::vector<pid_t>{pid}) << "ip netns exec execs in place";
    EXPECT_TRUE(net.pids_in("y").empty());
    // A frozen process is still stopped on request.
    p.signal(SIGSTOP);
    EXPECT_GE(p.stop(), 0);
    EXPECT_FALSE(p.running());
    listen(net, "y");  // left running: the destructor stops it
  }
  const auto listed = run_checked({"ip", "netns", "list"});
  for (const auto& n : names) EXPECT_EQ(listed.find(n), std::string::npos) << n << " is left";
  EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(pid) + "/stat"));
}

}  // namespace
}  // namespace galaxies::test::netns
