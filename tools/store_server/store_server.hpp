// The one launcher of registry stores: an `etcd` or `redis-server` process started on free
// 127.0.0.1 ports with a private directory (its data and its log), waited for until it serves,
// and stopped by its PID. The tests start their stores with it (tests/support/store_server.hpp),
// with the faults they inject (stop, kill, restart on the same ports, pause), and so does the
// demo (examples/demo_director, run by scripts/demo.sh --registry etcd|redis). A server also dies
// with the process that started it (PR_SET_PDEATHSIG), so a crash leaves nothing behind, and runs
// in a process group of its own, so a Ctrl-C in the terminal reaches only its starter, which
// stops it in its own time. Other servers may derive from store_server (the tests' Prometheus).
// A server may also run inside a network namespace, on an address of a test network (the fault
// tests' stores, tests/fault): started in it, its ports chosen and its readiness probed in it.
// No dependency on the library: the demo's director links it alone.
//
// Threading: one object is used from one thread. The server dies when the *thread* that started
// it exits (that is what PR_SET_PDEATHSIG watches): start servers from the main thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "store_server/unique_fd.hpp"

namespace galaxies::stores {

// A TCP port on 127.0.0.1 that nothing is bound to right now, chosen at random below the kernel's
// ephemeral range: a client redialling a stopped server can then never be handed the server's
// port as its own source port (a TCP self-connect that looks like a live server).
std::uint16_t free_loopback_port();

// The path of the executable `name` in PATH, "" when there is none.
std::string find_on_path(const std::string& name);

// Where a server keeps its files, and what its starter does while it waits.
struct store_settings {
  // The log of its stdout and stderr; "" for dir()/server.log.
  std::filesystem::path log_path;
  // Called while waiting for the server to become ready; may throw to give up (the server is
  // stopped first). The demo's Ctrl-C.
  std::function<void()> check_interrupt;
  // The network namespace to run the server in: the file that names it, as `ip netns add` makes
  // it (/run/netns/NAME); empty for the starter's own. The child joins it before exec (setns), so
  // the PID stays the server's own; ports are chosen and readiness probed from inside it too.
  // Needs CAP_SYS_ADMIN (root).
  std::filesystem::path network_namespace;
  // The IPv4 address the server listens on and its URL names; empty for 127.0.0.1. Any other
  // address exists only inside a namespace of a test network.
  std::string address;
};

class store_server {
 public:
  // stop(), then removes the private directory unless keep_dir(true) (or the environment variable
  // GALAXIES_TEST_KEEP_DIRS) says to keep it.
  virtual ~store_server();
  store_server(const store_server&) = delete;
  store_server& operator=(const store_server&) = delete;

  const std::string& program() const { return name_; }  // "etcd", "redis-server"
  // The registry URL of this server: "etcd://ADDRESS:P" or "redis://ADDRESS:P".
  const std::string& url() const { return url_; }
  const std::string& address() const { return address_; }  // "127.0.0.1" unless set
  std::uint16_t port() const { return ports_.at(0); }      // the client port
  pid_t pid() const { return pid_; }                       // -1 when not running
  bool running() const { return pid_ > 0; }
  bool paused() const { return paused_; }
  // The private directory: the data in dir()/data, the log (by default) in dir()/server.log.
  const std::filesystem::path& dir() const { return dir_; }
  const std::filesystem::path& log_path() const { return log_path_; }
  // The end of the server's stdout and stderr, for failure messages.
  std::string log_tail(std::size_t max_bytes = 4000) const;
  // How long the last start took until the server answered.
  std::chrono::steady_clock::duration ready_after() const { return ready_after_; }
  void keep_dir(bool keep) { keep_dir_ = keep; }
  // One readiness check (etcd: GET /health; Redis: PING), bounded by `timeout`.
  bool answers(std::chrono::milliseconds timeout) const { return probe(timeout); }
  // True once the server has exited on its own (or was stopped): reaps it without waiting.
  bool exited();
  // The wait status of its exit (waitpid), -1 when it has not exited since it last started.
  int wait_status() const { return wait_status_.value_or(-1); }

  // SIGTERM (and SIGCONT, so a paused server can handle it), SIGKILL when it has not exited
  // within a bound, then reaped. Does nothing when not running. False when it took SIGKILL.
  bool stop();
  // SIGKILL and reap: a crash. Does nothing when not running.
  void kill();
  // Stops it when running, then starts it again on the same ports, waiting until it serves.
  // etcd keeps its data unless `keep_data` is false (then it comes back as a new, empty cluster);
  // Redis, without persistence, always starts empty. Throws std::runtime_error with the log's
  // tail when it does not become ready.
  void restart(bool keep_data = true);
  // SIGSTOP / SIGCONT, returning once every thread of the server has stopped / resumed. While
  // paused the kernel still accepts TCP connections on the port, but nothing answers them: the
  // nastiest kind of unreachable.
  void pause();
  void resume();

 protected:
  // `name` is the binary ("etcd", "redis-server"); `scheme` the URL's; `ports` how many ports the
  // server listens on (the client port first). Throws std::runtime_error when `name` is not on
  // PATH.
  store_server(std::string name, std::string scheme, std::size_t ports,
               store_settings settings = {});
  // Picks free ports and starts the server, waiting until ready; retried with other ports when
  // the server exits because another process took one first. Called by the derived constructor
  // (the command line is virtual). Throws std::runtime_error with the log's tail on failure,
  // the server stopped and the directory removed.
  void start();

  virtual std::vector<std::string> command() const = 0;
  // One readiness check, bounded by `timeout`: true once the server serves requests.
  virtual bool probe(std::chrono::milliseconds timeout) const = 0;

  // True when the binary is found on PATH.
  static bool on_path(const std::string& name);
  // True when address() is on 127.0.0.0/8.
  bool on_loopback() const { return address_.starts_with("127."); }
  // One request/response with the client port over a fresh connection made where the server
  // runs, bounded by `timeout`: sends `request`, then reads until `complete(reply)` holds, the
  // server closes, or time runs out. The reply so far ("" when the connection failed).
  std::string exchange(const std::string& request, std::chrono::milliseconds timeout,
                       const std::function<bool(const std::string&)>& complete) const;

  std::vector<std::uint16_t> ports_;
  std::filesystem::path dir_;

 private:
  enum class launch_result { ready, exited };
  void start_on_free_ports();
  launch_result launch();
  bool wait_reaped(std::chrono::milliseconds deadline);
  // Waits for the stop (WUNTRACED) or continue (WCONTINUED) of the server to be reported.
  bool wait_state(int options, std::chrono::milliseconds deadline);
  [[noreturn]] void fail(const std::string& what);
  // A TCP socket in the server's network namespace.
  unique_fd open_socket(int flags) const;
  std::uint16_t free_port() const;
  void remove_dir();

  std::string name_;
  std::string binary_;
  std::string scheme_;
  std::string url_;
  std::string address_;
  unique_fd netns_;  // the namespace to start the server in; -1 for the starter's own
  std::filesystem::path log_path_;
  std::function<void()> check_interrupt_;
  pid_t pid_ = -1;
  std::optional<int> wait_status_;
  bool paused_ = false;
  bool keep_dir_ = false;
  std::chrono::steady_clock::duration ready_after_{};
};

// etcd 3.4, one member, fast raft timings (--heartbeat-interval 10 --election-timeout 100), its
// data in dir()/data (on tmpfs when /dev/shm is there: etcd fsyncs every write). Ready once GET
// /health answers {"health":"true"}.
class etcd_server final : public store_server {
 public:
  static bool available() { return on_path("etcd"); }
  explicit etcd_server(store_settings settings = {});  // started and ready, or throws
  ~etcd_server() override = default;
  std::uint16_t peer_port() const { return ports_.at(1); }

 private:
  std::vector<std::string> command() const override;
  bool probe(std::chrono::milliseconds timeout) const override;
};

// redis-server 7 without persistence (--save '' --appendonly no), --hz 100 so that expiries are
// noticed within ~10 ms, and otherwise Redis's defaults as a deployment has them (no keyspace
// notifications); `extra_args` are appended, e.g. {"--notify-keyspace-events", "Ex"}. Ready once
// PING answers PONG.
class redis_server final : public store_server {
 public:
  static bool available() { return on_path("redis-server"); }
  // Started and ready, or throws std::runtime_error.
  explicit redis_server(std::vector<std::string> extra_args = {}, store_settings settings = {});
  ~redis_server() override = default;

 private:
  std::vector<std::string> command() const override;
  bool probe(std::chrono::milliseconds timeout) const override;

  std::vector<std::string> extra_args_;
};

}  // namespace galaxies::stores
