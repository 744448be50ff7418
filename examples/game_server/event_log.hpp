// Everything a worker reports goes through here: one line per event on stdout, as JSON (for
// demo_director, which parses it) or as readable text. Threading: the node's executor only.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace game {

class event_log {
 public:
  event_log(std::string host_label, bool json) : host_label_(std::move(host_label)), json_(json) {}

  // `me` is this worker's node id; it is added to every event with the host label, the pid and a
  // steady-clock timestamp in microseconds (comparable between processes of one machine).
  void set_me(std::string me) { me_ = std::move(me); }

  void emit(const std::string& event, nlohmann::json fields = nlohmann::json::object()) const;

 private:
  std::string host_label_;
  bool json_;
  std::string me_;
};

// Microseconds of std::chrono::steady_clock (CLOCK_MONOTONIC: one clock for the whole machine).
long long steady_us();

}  // namespace game
