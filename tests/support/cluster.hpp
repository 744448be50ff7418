// Integration-test harness: real `galaxies host` processes on loopback, their workers' JSON event
// lines, and nodes attached from the test process. Every process it starts is stopped by PID.
#pragma once

#include <sys/types.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "galaxies/node.hpp"

namespace galaxies::test {

using namespace std::chrono_literals;

// A private temporary directory, removed (recursively) when destroyed, unless the environment
// sets GALAXIES_TEST_KEEP_DIRS (to read the hosts' logs after a failure).
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The path of the built `galaxies` CLI (a compile definition of the test targets).
std::string cli_path();

// One JSON event line printed by a worker (see `galaxies host --events json`).
struct event {
  std::string name;      // "started", "nodeJoined", "nodeLeft", "hostJoined", "hostLeft"
  std::string observer;  // the worker that saw it
  std::string node;      // "" for host events
  std::string host;
  int pid = 0;
  std::string reason;  // nodeLeft / hostLeft
  nlohmann::json raw;
};

struct host_options {
  std::size_t workers = 3;
  std::string cluster = "test";
  // Appended to the command line, e.g. {"--heartbeat-ms", "200"}; not the options the harness
  // sets itself (--workers --registry --cluster --events --listen --unix --log-level).
  std::vector<std::string> extra_args;
  // Runs the host through this command (e.g. {"/usr/bin/prlimit", "--nofile=64:64"}).
  std::vector<std::string> launcher;
};

// A host with `n` workers and the defaults otherwise.
inline host_options with_workers(std::size_t n) {
  host_options opts;
  opts.workers = n;
  return opts;
}

// One `galaxies host` process with --events json; stdout parsed into events by a reader thread,
// stderr kept in a log file under the cluster's directory.
class host_process {
 public:
  host_process(const std::filesystem::path& dir, const std::string& registry_url,
               const std::string& name, host_options opts);
  // Stops it (SIGTERM, SIGKILL after 10 s), then SIGKILLs any of its workers still alive; by PID.
  ~host_process();

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  const std::string& unix_path() const { return unix_path_; }
  std::filesystem::path log_path() const;
  std::string log() const;  // stderr so far

  // Thread-safe snapshot of every event its workers printed so far.
  std::vector<event> events() const;
  // Waits until `pred` holds over the events seen so far; false after `deadline`.
  bool wait_events(std::chrono::milliseconds deadline,
                   const std::function<bool(const std::vector<event>&)>& pred) const;

  // Node ids of its workers currently started and not seen leaving (from events and its status).
  std::vector<std::string> started_nodes() const;
  std::vector<int> worker_pids() const;  // every worker pid ever started by this host
  // Waits until `n` workers have printed "started" and were not seen leaving, or the master has
  // exited; their node ids (fewer than `n` when the deadline passed).
  std::vector<std::string> wait_started(std::size_t n,
                                        std::chrono::milliseconds deadline = 20s) const;

  // The host's own id, from its workers' events or else its status; "" when it does not answer.
  std::string host_id() const;
  // This host's entry as `galaxies status --json` prints it: {"host", "address", "hostname", "pid",
  // "status": {...}}. Asked directly over its Unix socket (as an observer), so a stopped or dead
  // other host cannot delay it. Null when the host does not answer within `timeout`.
  nlohmann::json status(std::chrono::milliseconds timeout) const;
  nlohmann::json status() const { return status(3s); }
  std::string address() const;  // its TCP address, from its status; "" when it does not answer

  void terminate();  // SIGTERM and wait (bounded); workers leave gracefully
  void kill9();      // SIGKILL the master only; its workers must exit by themselves
  bool running() const;
  void request_stop();        // SIGTERM without waiting (to stop several hosts at once)
  void send_signal(int sig);  // to the master only, e.g. SIGSTOP / SIGCONT

  // A process seen by its pid and start time, so that a recycled pid is never signalled.
  struct process_identity {
    pid_t pid = -1;
    std::uint64_t start_time = 0;  // /proc/PID/stat field 22; 0 = already gone when seen
  };

 private:
  void read_stdout(int fd);
  bool wait_reaped(std::chrono::milliseconds deadline);
  void remember_children();

  std::filesystem::path dir_;
  std::string registry_url_;
  std::string name_;
  host_options opts_;
  std::string unix_path_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  // A pipe written to stop the reader when stdout never reaches EOF (a worker that will not die).
  int wake_read_ = -1;
  int wake_write_ = -1;
  std::thread reader_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::uint64_t version_ = 0;  // bumped on every event and at EOF
  bool eof_ = false;
  std::vector<event> events_;
  std::vector<process_identity> workers_;  // every worker seen, for the final SIGKILL
  mutable std::string host_id_;
};

// Several hosts sharing one file registry in a temp dir.
class cluster {
 public:
  explicit cluster(std::string name = "test");
  ~cluster();  // SIGTERM to every host at once, then each host's bounded stop

  // opts.cluster, when left at its default, becomes this cluster's name.
  host_process& add_host(host_options opts = {});
  host_process& host(std::size_t i) { return *hosts_.at(i); }
  std::size_t size() const { return hosts_.size(); }
  const std::string& registry_url() const { return registry_url_; }
  // The file registry's directory: one row file per host (registry/file_store.hpp).
  std::filesystem::path registry_dir() const { return dir_.path() / "registry"; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  const std::string& name() const { return name_; }

  // Every event of every host.
  std::vector<event> all_events() const;

 private:
  temp_dir dir_;
  std::string name_;
  std::string registry_url_;
  std::vector<std::unique_ptr<host_process>> hosts_;
};

// A node attached from the test process to a host's Unix socket, with its own io_context thread.
// Its methods are thread-safe: they run on the node's thread and wait for the result.
class test_node {
 public:
  // heartbeat: on the node's channel; an interval of 0 lets the test freeze the node's thread
  // (freeze_until) without its master taking the silence for death.
  test_node(const std::string& unix_path, const std::string& cluster,
            heartbeat_options heartbeat = {});
  ~test_node();

  // Blocks the node's thread until `thaw` is ready (at most 5 minutes): the node reads nothing
  // meanwhile, as a stopped process would. Returns at once.
  void freeze_until(std::shared_future<void> thaw);

  bool wait_ready(std::chrono::milliseconds deadline = 10s);
  node_id id();
  std::vector<node_info> nodes();
  node_counters counters();
  std::vector<peer_traffic> peer_counters();

  // Runs `fn` on the node's thread with the node, and waits for it to return.
  void run(const std::function<void(node&)>& fn);

  // A request, waited for (bounded by timeout + 5 s; past that: std::errc::timed_out).
  std::pair<std::error_code, bytes> request(const node_id& to, std::string_view command,
                                            std::string_view payload,
                                            std::chrono::milliseconds timeout = 5s);
  // The same, not waited for: the future is ready once the request completes.
  std::future<std::pair<std::error_code, bytes>> request_async(const node_id& to,
                                                               std::string_view command,
                                                               std::string_view payload,
                                                               std::chrono::milliseconds timeout);
  std::error_code send(const node_id& to, std::string_view command, std::string_view payload);

  // Every group event and node departure this node saw, in order: "+GROUP ID", "-GROUP ID",
  // "left ID" (docs/protocol.md §5.1: a departing node's groups come before its "left").
  std::vector<std::string> membership_log() const;
  // node::members(group) as ids, sorted.
  std::vector<std::string> members(std::string_view group);

  // Joined/left node ids observed by this node, in order.
  std::vector<std::string> joined() const;
  std::vector<std::string> left() const;
  std::vector<std::pair<std::string, leave_reason>> left_reasons() const;
  bool disconnected() const;  // the master went or refused us

 private:
  // Runs fn on the node's thread and waits (bounded: throws std::runtime_error past 10 s).
  template <class Fn>
  auto call(Fn&& fn);

  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::unique_ptr<node> node_;
  std::future<void> finished_;  // ready once the io thread returned
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable ready_changed_;
  std::vector<std::string> joined_;
  std::vector<std::string> left_;
  std::vector<std::pair<std::string, leave_reason>> left_reasons_;
  std::vector<std::string> membership_log_;
  bool ready_ = false;
  bool disconnected_ = false;
};

// Helpers over events.
// Events named `name` seen by `observer` ("" = any observer) about `node`; for host events (whose
// node is "") `node` is matched against the event's host.
std::size_t count(const std::vector<event>& events, std::string_view name,
                  std::string_view observer, std::string_view node);

// True once the process has exited: no such pid any more, or a zombie nobody reaped yet (workers
// orphaned by a killed master are reparented to a PID 1 that may never reap them).
bool process_exited(pid_t pid);

}  // namespace galaxies::test
