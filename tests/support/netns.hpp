// Test hosts on one machine: network namespaces on a private bridge, processes started inside
// them, and the faults the fault tests inject (link down, partitions, loss, bandwidth).
//
// How the isolation works (the SAFETY RULE of the test hosts: no packet for a test address may
// ever leave the machine):
//  1. The whole test binary, driver included, runs in a fresh network namespace with nothing but
//     `lo` and no route anywhere. support/isolation.hpp does it before any test runs: when
//     the environment marker (isolation_marker_env) is not set, it sets it and re-executes itself,
//     in place and with the same argv (ctest's --gtest_filter keeps working), as
//     `unshare --net -- /proc/self/exe ARGS...`. Once inside, verify_isolated() aborts the
//     process loudly unless the namespace is not the machine's (PID 1's), no interface other
//     than `lo` exists and no default route is set (IPv4 or IPv6). Without root, or without
//     `unshare`, `ip`, `iptables` or `tc`, nothing is re-executed and every test skips with the
//     reason (unavailable_reason()).
//  2. test_network makes its hosts with `ip netns add` (named gx<pid>n<k>-<host>, unique per run
//     and per network): fresh namespaces whose only interface besides `lo` is a veth to a bridge
//     that lives in a namespace of its own. Addresses are 10.77.0.x/24 and exist only there; no
//     namespace has a default route, so nothing can reach anything but the bridge.
//  3. Every process a test starts runs inside one of those namespaces (`ip netns exec NAME ...`,
//     which execs in place: the PID is the program's), with PR_SET_PDEATHSIG so it dies with the
//     test. The driver itself never sends a packet to a 10.x address (and could not: no route).
//  4. `ip netns add` mounts the namespaces under /run/netns, visible machine-wide and outliving
//     a crashed run. test_network's destructor stops its processes by PID, waits until
//     `ip netns pids` is empty and deletes every namespace, on every path (RAII). At start,
//     namespaces named gx<pid>... whose pid is no longer alive (left by a crashed run) are
//     deleted, after their remaining processes are killed by PID.
//
// Threading: a test_network and its processes are used from the test's main thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace galaxies::test::netns {

using namespace std::chrono_literals;

// Set in the environment of the re-executed test binary (and so of everything it starts).
inline constexpr const char* isolation_marker_env = "GALAXIES_FAULT_ISOLATED";

// Why these tests cannot run here ("" when they can): not root, or one of `tools` (looked up in
// PATH and the sbin directories) is missing.
std::string environment_problem(const std::vector<std::string>& tools);
// True when `unshare --net -- true` works here (a container may forbid it even to root).
bool can_unshare();
// What is wrong with the current network namespace for running tests in it ("" when isolated):
// it is the machine's own, has an interface besides lo, or has a default route.
std::string isolation_problem();
// Aborts the process with a loud message unless isolation_problem() is empty.
void verify_isolated();

// Set by the isolated main when the tests cannot run; every fault test skips with it.
void set_unavailable_reason(std::string reason);
const std::string& unavailable_reason();

// The result of a short command (ip, iptables, tc) run to completion.
struct command_result {
  int status = -1;     // exit code; -1 when it did not exit normally
  std::string output;  // stdout and stderr, interleaved
};
// Runs argv (argv[0] looked up in PATH) and waits for it, bounded by `limit` (then SIGKILL).
command_result run_command(const std::vector<std::string>& argv,
                           std::chrono::milliseconds limit = 20s);
// The same; throws std::runtime_error with the command and its output unless it exits with 0.
std::string run_checked(const std::vector<std::string>& argv,
                        std::chrono::milliseconds limit = 20s);

// CLOCK_MONOTONIC in milliseconds: one clock for every process of the machine.
double monotonic_ms();

// A process started by test_network::spawn: a child of the test, stopped by PID.
class process {
 public:
  process(pid_t pid, std::string name, std::filesystem::path log_path)
      : pid_(pid), name_(std::move(name)), log_path_(std::move(log_path)) {}
  ~process() { stop(); }
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  const std::filesystem::path& log_path() const { return log_path_; }
  std::string log() const;  // what it wrote to stdout and stderr so far

  bool running();                    // not yet exited (reaps it when it has)
  void signal(int sig);              // to this process only; nothing once reaped
  std::optional<int> exit_status();  // the wait status once reaped
  bool wait_exit(std::chrono::milliseconds deadline);
  // SIGTERM, then SIGKILL after `grace`, then waits (bounded); returns the wait status (-1 when
  // it never exited, which only a process stuck in the kernel does).
  int stop(std::chrono::milliseconds grace = 5s);

 private:
  bool reap(int options);

  pid_t pid_;
  std::string name_;
  std::filesystem::path log_path_;
  std::optional<int> status_;
};

// A bridge namespace and one namespace per host, each host with eth0 on the bridge at
// 10.77.0.<i+1>/24 (i = its index in `hosts`) and lo up.
class test_network {
 public:
  explicit test_network(std::vector<std::string> hosts);
  // Stops every process spawned (SIGTERM, SIGKILL after a grace), waits until no process is left
  // in any of its namespaces (killing stragglers by PID) and deletes the namespaces.
  ~test_network();
  test_network(const test_network&) = delete;
  test_network& operator=(const test_network&) = delete;

  const std::vector<std::string>& hosts() const { return hosts_; }
  std::string address(const std::string& host) const;       // "10.77.0.1"
  std::string namespace_of(const std::string& host) const;  // "gx1234n1-a"
  // The file that names it, for setns(2): "/run/netns/gx1234n1-a".
  std::filesystem::path namespace_file(const std::string& host) const;

  // Starts argv inside the host's namespace, stdin from /dev/null, stdout and stderr appended to
  // log_path, with `env` added to the test's environment. The process dies with the test
  // (PR_SET_PDEATHSIG); it is stopped by the destructor unless stopped earlier.
  process& spawn(const std::string& host, const std::vector<std::string>& argv,
                 const std::vector<std::pair<std::string, std::string>>& env,
                 const std::filesystem::path& log_path);

  // Runs a command inside the host's namespace and returns its output; throws on failure.
  std::string exec(const std::string& host, const std::vector<std::string>& argv);

  // Faults; each is undone by heal(host).
  void link_down(const std::string& host);  // eth0 down: the host is silent, both ways
  void link_up(const std::string& host);
  // Both directions between a and b dropped (rules in a's namespace).
  void partition(const std::string& a, const std::string& b);
  // Packets from `from` to `to` dropped (an INPUT rule in to's namespace); the reverse flows.
  void partition_one_way(const std::string& from, const std::string& to);
  // Each packet in and out of the host dropped with this probability (iptables statistic).
  void loss(const std::string& host, double probability);
  // Egress of the host shaped with tc tbf, e.g. "1mbit".
  void rate_limit(const std::string& host, const std::string& rate);
  // Flushes the host's iptables rules, sets its link up, removes its qdisc.
  void heal(const std::string& host);

  // Every PID inside the host's namespace (`ip netns pids`).
  std::vector<pid_t> pids_in(const std::string& host) const;

 private:
  std::size_t index_of(const std::string& host) const;
  void teardown() noexcept;

  std::vector<std::string> hosts_;
  std::string prefix_;  // gx<pid>n<k>
  std::string bridge_ns_;
  std::vector<std::string> created_;  // namespaces to delete, bridge first
  std::vector<std::unique_ptr<process>> processes_;
};

// Deletes namespaces named gx<pid>... whose pid is gone (left behind by a crashed run).
void remove_stale_namespaces();

}  // namespace galaxies::test::netns
