// The driver's side of the scale floor (scale_floor.hpp).
#include "scale_floor.hpp"

#include <signal.h>
#include <sys/socket.h>

#include <climits>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include "child_process.hpp"
#include "stream_io.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
constexpr auto receive_slice = 50ms;  // how often the masters are checked while waiting
constexpr auto master_stop_grace = 5000ms;

class floor_session {
 public:
  floor_session(int hosts, int workers, const std::string& dir)
      : nodes_(static_cast<std::size_t>(hosts) * static_cast<std::size_t>(workers)) {
    std::filesystem::create_directories(dir + "/peers");
    done_ = bind_unix(dir + "/done.sock", SOCK_DGRAM);
    set_io_timeout(done_.get(), receive_slice);
    for (int h = 0; h < hosts; ++h)
      masters_.push_back(start_this_program({scale_floor_subcommand, "--dir", dir, "--index",
                                             std::to_string(h), "--hosts", std::to_string(hosts),
                                             "--workers", std::to_string(workers)}));
    last_start_ns_ = to_ns(clock::now());
  }

  // Until every worker has said its view is complete; "" then, else why not.
  std::string wait(clock::time_point give_up) {
    while (done_ns_.size() < nodes_) {
      for (auto& m : masters_)
        if (!m->running()) return "a floor master exited";
      if (clock::now() > give_up) return "the floor did not converge in time";
      std::int64_t record[2] = {0, 0};  // a worker's pid, when its view completed
      const ssize_t n = ::recv(done_.get(), record, sizeof record, 0);
      // From our own grandchildren, still checked: one record per pid, a pid a pid can be.
      if (n == sizeof record && record[0] > 0 && record[0] <= INT_MAX)
        done_ns_.emplace(static_cast<int>(record[0]), record[1]);
    }
    return "";
  }

  std::vector<int> master_pids() const {
    std::vector<int> pids;
    for (const auto& m : masters_) pids.push_back(m->pid());
    return pids;
  }
  std::vector<int> worker_pids() const {
    std::vector<int> pids;
    for (const auto& [pid, at] : done_ns_) pids.push_back(pid);
    return pids;
  }

  json view_complete_ms() const {
    std::vector<double> each;
    for (const auto& [pid, at] : done_ns_)
      each.push_back(static_cast<double>(at - last_start_ns_) / 1e6);
    return spread(std::move(each));
  }
  std::size_t views_complete() const { return done_ns_.size(); }

  // Every master by its PID (each stops its workers by theirs); true if all went on SIGTERM.
  // All are told first, so that they stop side by side.
  bool stop() {
    for (auto& m : masters_)
      if (m->running()) ::kill(m->pid(), SIGTERM);
    bool clean = true;
    for (auto& m : masters_) clean = m->stop(master_stop_grace) && clean;
    return clean;
  }

 private:
  std::size_t nodes_;
  fd_guard done_;
  std::vector<std::unique_ptr<child_process>> masters_;
  std::int64_t last_start_ns_ = 0;
  std::map<int, std::int64_t> done_ns_;  // worker pid -> when its view completed
};

}  // namespace

json run_scale_floor(int hosts, int workers, const std::string& dir, clock::time_point give_up,
                     const cost_reader& cost) {
  json out = json::object();
  std::optional<floor_session> session;
  try {
    session.emplace(hosts, workers, dir);
    const std::string failure = session->wait(give_up);
    if (failure.empty())
      out["cost_at_convergence"] = cost(session->master_pids(), session->worker_pids());
    else
      out["error"] = failure;
  } catch (const std::exception& e) {
    out["error"] = e.what();
  }
  if (!session) return out;  // it could not start: what it had started is stopped already
  out["views_complete"] = session->views_complete();
  out["view_complete_ms"] = session->view_complete_ms();
  out["stopped_cleanly"] = session->stop();
  return out;
}

}  // namespace galaxies::bench
