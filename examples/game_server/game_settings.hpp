// What a game_server worker needs to know besides the galaxies options. Plain data, parsed from
// argv by main.cpp; every worker parses the same argv as its master, so all workers of a host
// agree.
#pragma once

#include <chrono>
#include <string>

namespace game {

struct game_settings {
  std::string host_label = "?";  // a short name for humans ("A"); the node ids are the truth
  bool json = false;             // one JSON object per line (for demo_director) instead of text
  int players = 2;               // simulated players per worker
  int rooms = 8;                 // rooms 1..rooms, spread over the workers of the cluster
  std::chrono::milliseconds tick{250};  // how often players move and act
  std::chrono::milliseconds request_timeout{2000};
};

}  // namespace game
