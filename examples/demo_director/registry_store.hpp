// The demo's private registry store: an etcd or a Redis server that the director starts on free
// ports of 127.0.0.1 before the hosts, and stops by its pid after them. Its log goes to the work
// directory; its data to a fresh directory (in /dev/shm when there is one: etcd fsyncs every
// write, and a busy disk must not stall the demo's registry) removed when it is destroyed.
// Threading: the director's one thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace director {

class registry_store {
 public:
  enum class kind { etcd, redis };

  // Starts the server and waits (bounded) until it answers: etcd's GET /health says true, Redis
  // answers PING. Throws std::runtime_error, with the end of its log, if it cannot be started or
  // is not ready in time; `check_interrupt` is called while waiting and may throw to give up.
  registry_store(kind k, const std::string& work_dir, const std::function<void()>& check_interrupt);
  ~registry_store();  // stops the server if it still runs; removes the data unless keep_data()
  registry_store(const registry_store&) = delete;
  registry_store& operator=(const registry_store&) = delete;

  const std::string& program() const { return program_; }  // "etcd" or "redis-server"
  const std::string& url() const { return url_; }          // etcd://127.0.0.1:P, redis://...
  const std::string& log_path() const { return log_path_; }
  const std::string& data_dir() const { return data_dir_; }
  pid_t pid() const { return pid_; }
  double ready_after_s() const { return ready_after_s_; }
  void keep_data(bool keep) { keep_data_ = keep; }

  bool exited();  // true once the server has exited (waitpid, no blocking)
  int wait_status() const { return status_.value_or(-1); }
  // SIGTERM by pid, then SIGKILL if it has not exited within a grace period. False if it needed
  // SIGKILL.
  bool stop();

 private:
  enum class launch_result { ready, port_taken };
  launch_result launch(const std::function<void()>& check_interrupt);
  bool probe() const;
  // "etcd <what>; its log: PATH", then on the next lines the end of that log
  std::string failure(const std::string& what) const;
  bool wait_exit(double seconds);

  kind kind_;
  std::string program_, binary_, url_, log_path_, data_dir_;
  std::uint16_t client_port_ = 0, peer_port_ = 0;
  pid_t pid_ = -1;
  std::optional<int> status_;
  double ready_after_s_ = 0;
  bool keep_data_ = false;
};

}  // namespace director
