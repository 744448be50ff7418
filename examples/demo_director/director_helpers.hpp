// Small helpers the director's files share: the clock, lists for sentences, the end of a log.
#pragma once

#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "cluster_view.hpp"

namespace director {

// Microseconds of std::chrono::steady_clock: CLOCK_MONOTONIC, the clock the workers stamp
// their events with, so times from different processes of this machine compare.
inline long long now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The last `lines` lines of a file, each indented: why a process failed, without sending people
// to a file.
inline std::string tail_of_file(const std::string& path, std::size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "    " + all[i] + "\n";
  return out;
}

inline double ms_between(long long from_us, long long to_us) {
  return static_cast<double>(to_us - from_us) / 1000.0;
}

// "A1, B2, C3"
inline std::string labels_of(const std::vector<worker_record*>& workers) {
  std::string out;
  for (const auto* w : workers) out += (out.empty() ? "" : ", ") + w->label;
  return out;
}

inline std::string join(const std::set<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Every worker in `all` is ready, has seen `hosts` hosts, and has seen every other one join.
inline bool all_see_each_other(const std::vector<worker_record*>& all, std::size_t hosts) {
  for (auto* w : all) {
    if (!w->ready || w->hosts_joined.size() < hosts) return false;
    for (auto* o : all)
      if (o != w && !w->joined.contains(o->id)) return false;
  }
  return true;
}

}  // namespace director
