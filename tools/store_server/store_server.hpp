// Real registry stores for integration tests: an `etcd` or `redis-server` process started by the
// test on free 127.0.0.1 ports with a private data directory, and the faults tests inject into it
// (stop, kill, restart on the same ports, pause). Every process is stopped by its PID; a server
// also dies with the test process (PR_SET_PDEATHSIG), so a crashed test leaves nothing behind.
// Other servers a test starts the same way derive from store_server too (prometheus_server.hpp).
//
// Threading: one object is used from one thread. The server dies when the *thread* that started
// it exits (that is what PR_SET_PDEATHSIG watches): start servers from the test's main thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace galaxies::test {

// A TCP port on 127.0.0.1 that nothing is bound to right now, chosen at random below the kernel's
// ephemeral range: a client redialling a stopped server can then never be handed the server's
// port as its own source port (a TCP self-connect that looks like a live server).
std::uint16_t free_loopback_port();

// The path of the executable `name` in PATH, "" when there is none.
std::string find_on_path(const std::string& name);

class store_server {
 public:
  virtual ~store_server();  // stop(), then removes the data directory
  store_server(const store_server&) = delete;
  store_server& operator=(const store_server&) = delete;

  // The registry URL of this server: "etcd://127.0.0.1:P" or "redis://127.0.0.1:P".
  const std::string& url() const { return url_; }
  std::uint16_t port() const { return ports_.at(0); }  // the client port
  pid_t pid() const { return pid_; }                   // -1 when not running
  bool running() const { return pid_ > 0; }
  bool paused() const { return paused_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path log_path() const { return dir_ / "server.log"; }
  // The end of the server's stdout and stderr, for failure messages.
  std::string log_tail(std::size_t max_bytes = 4000) const;
  // One readiness check (etcd: GET /health; Redis: PING), bounded by `timeout`.
  bool answers(std::chrono::milliseconds timeout) const { return probe(timeout); }

  // SIGTERM (and SIGCONT, so a paused server can handle it), SIGKILL when it has not exited
  // within a bound, then reaped. Does nothing when not running.
  void stop();
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
  // server listens on (the client port first).
  store_server(std::string name, std::string scheme, std::size_t ports);
  // Picks free ports and starts the server, waiting until ready; retried with other ports when
  // the server exits because another process took one first. Called by the derived constructor
  // (the command line is virtual). Throws std::runtime_error with the log's tail on failure.
  void start();

  virtual std::vector<std::string> command() const = 0;
  // One readiness check, bounded by `timeout`: true once the server serves requests.
  virtual bool probe(std::chrono::milliseconds timeout) const = 0;

  // True when the binary is found on PATH.
  static bool on_path(const std::string& name);

  std::vector<std::uint16_t> ports_;
  std::filesystem::path dir_;

 private:
  enum class launch_result { ready, exited };
  launch_result launch();
  bool wait_reaped(std::chrono::milliseconds deadline);
  // Waits for the stop (WUNTRACED) or continue (WCONTINUED) of the server to be reported.
  bool wait_state(int options, std::chrono::milliseconds deadline);
  [[noreturn]] void fail(const std::string& what);

  std::string name_;
  std::string scheme_;
  std::string url_;
  pid_t pid_ = -1;
  bool paused_ = false;
};

// etcd 3.4, one member, fast raft timings (--heartbeat-interval 10 --election-timeout 100), its
// data in dir()/data (on tmpfs when /dev/shm is there: etcd fsyncs every write). Ready once GET
// /health answers {"health":"true"}.
class etcd_server final : public store_server {
 public:
  static bool available() { return on_path("etcd"); }
  etcd_server();  // started and ready, or throws std::runtime_error
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
  explicit redis_server(std::vector<std::string> extra_args = {});
  ~redis_server() override = default;

 private:
  std::vector<std::string> command() const override;
  bool probe(std::chrono::milliseconds timeout) const override;

  std::vector<std::string> extra_args_;
};

// A TCP relay on a free 127.0.0.1 port to 127.0.0.1:target, to cut one client off from a store
// that the others still reach. Threads of its own (one accepting, two per connection); all
// members are thread-safe.
class loopback_proxy {
 public:
  explicit loopback_proxy(std::uint16_t target);
  ~loopback_proxy();  // closes everything and joins its threads
  loopback_proxy(const loopback_proxy&) = delete;
  loopback_proxy& operator=(const loopback_proxy&) = delete;

  std::uint16_t port() const { return port_; }
  // Closes every relayed connection and, until heal(), every new one as soon as it is accepted:
  // to the client, the store went away.
  void cut();
  void heal();

 private:
  struct link;
  void accept_loop();
  void relay(const std::shared_ptr<link>& l, bool upstream);

  std::uint16_t target_;
  std::uint16_t port_ = 0;
  int listener_ = -1;
  std::mutex mutex_;
  bool cut_ = false;
  bool closing_ = false;
  std::vector<std::shared_ptr<link>> links_;
  std::vector<std::thread> relays_;
  std::thread acceptor_;
};

}  // namespace galaxies::test
