// The scripted demo: starts hosts of game_server, tells in plain sentences what happens in the
// cluster, kills a worker, stops a host, checks that every node saw every event, and sums up.
// It never sleeps blindly: it waits for the events the workers print, each wait with a deadline.
// Threading: one thread; poll(2) over the hosts' stdout pipes.
//
// director.cpp holds the script and its checks, director_faults.cpp the faults it injects,
// director_story.cpp what it tells along the way.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cluster_view.hpp"
#include "host_process.hpp"
#include "store_server/store_server.hpp"

namespace director {

struct director_options {
  std::string game_server;  // path of the game_server program
  std::string work_dir;     // registry, sockets, logs; empty: a fresh directory under $TMPDIR
  // Where the hosts register: "file" (a file in the work directory), or "etcd" / "redis" (a
  // private server the director starts on free loopback ports and stops at the end).
  std::string registry = "file";
  // An existing registry used instead (file:PATH, etcd://HOST:PORT, redis://HOST:PORT); the
  // cluster is then named demo-PID, so that it cannot mix with another run on the same store.
  std::string registry_url;
  int hosts = 3;
  int workers = 3;
  // The script, in seconds since the start (a phase never starts before the previous one ended).
  double kill_at = 10, stop_at = 20, end_at = 30;
  bool verbose = false;  // also print every line the workers print
  bool keep = false;     // keep the work directory even when everything went well
};

class demo {
 public:
  explicit demo(director_options opts);
  ~demo();
  int run();  // the process's exit code: 0 when everything expected happened

 private:
  // The event pump (director.cpp).
  void pump(std::chrono::milliseconds max_wait);
  // Pumps until `done` or the deadline; on timeout records a failure (unless !required) saying
  // what did not happen and `explain()`. False on timeout or when a master died unexpectedly.
  bool wait_for(const std::string& what, double timeout_s, const std::function<bool()>& done,
                const std::function<std::string()>& explain, bool required = true);
  // Lets the game run until `t` (seconds since the start), telling stories; false if a host died.
  bool play_until(double t);
  // False (and a failure recorded, once) if a master exited that was not asked to, or the
  // private registry server did.
  bool hosts_alive(const std::string& during);

  // The phases (director.cpp; the faults in director_faults.cpp).
  bool start_registry();  // the private etcd or Redis server, if any
  bool start_cluster();
  bool kill_worker();
  bool check_pending_trades(const std::string& victim, const std::set<std::string>& pending,
                            long long kill_us);
  bool wait_respawn(const std::set<std::string>& before, long long kill_us);
  bool stop_host();
  bool check_agreement();
  void check_exactly_once();
  bool stop_everything();
  void stop_registry();  // the private server, by its pid, once every host has stopped

  // What it tells (director_story.cpp).
  void on_event(const nlohmann::json& event);
  void tell_story(const nlohmann::json& event);
  void tell_traffic();
  void tell_room_moves();
  void summary();
  int verdict();

  // Output.
  double elapsed() const;
  void say(const std::string& text) const;
  void phase(const std::string& text) const;
  void passed(const std::string& check) { checks_.push_back(check); }
  // Records a failure; `detail` (e.g. the end of a log) is printed now, not in the final list.
  void fail(const std::string& what, const std::string& detail = "");

  director_options opts_;
  std::chrono::steady_clock::time_point start_;
  std::string cluster_ = "demo";
  std::string registry_url_;   // what the hosts get as --registry
  std::string registry_text_;  // the same for people: "etcd at etcd://..."
  // The private server, if any: the project's launcher of stores (tools/store_server).
  std::unique_ptr<galaxies::stores::store_server> store_;
  pid_t store_pid_ = -1;         // its pid, still known once it has exited
  bool store_reported_ = false;  // its unexpected exit is reported once
  std::vector<std::unique_ptr<host_process>> hosts_;
  cluster_view view_;
  std::vector<std::string> checks_, failures_;
  std::set<std::string> stopped_hosts_;
  bool stopping_ = false;             // stopping everything: an interrupt no longer interrupts
  std::FILE* events_file_ = nullptr;  // every line the workers printed, for a post-mortem

  // Story-telling state.
  std::set<std::string> hosts_announced_;
  bool quiet_ = true;  // no game stories while a phase is being checked
  double next_story_at_ = 0;
  int story_turn_ = 0;
  double next_traffic_at_ = 0;
  std::uint64_t traffic_chats_ = 0, traffic_positions_ = 0;
  long long traffic_since_us_ = 0;
  std::vector<nlohmann::json> room_moves_;  // players who followed their room to a new host
  double room_moves_quiet_since_ = 0;

  // For the summary.
  std::size_t killed_ = 0, stopped_with_host_ = 0, running_at_end_ = 0;
};

}  // namespace director
