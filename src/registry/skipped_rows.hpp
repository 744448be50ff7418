// The log lines about rows a backend skipped. A bad row stays bad on every read (each refresh,
// each watch event), so each is reported at most once per interval, keyed by the row's key as
// the store names it, printed escaped. Memory stays bounded however many bad rows a store holds:
// past `max_remembered` keys, the rest are counted and summed up once per interval.
// Threading: one executor, like the registry that owns it.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>

#include "base/limits.hpp"

namespace galaxies::registry {

class skipped_rows_log {
 public:
  using clock = std::chrono::steady_clock;

  // `where` names the registry in each line (its describe()).
  explicit skipped_rows_log(std::string where,
                            std::chrono::milliseconds interval = limits::registry_warning_interval,
                            std::size_t max_remembered = limits::max_registry_hosts);

  // Reports that the row under `key` was skipped because of `why`. True when it wrote a line.
  bool skipped(std::string_view key, std::error_code why, clock::time_point now = clock::now());

 private:
  void forget_older_than(clock::time_point cutoff);

  std::string where_;
  std::chrono::milliseconds interval_;
  std::size_t max_remembered_;
  std::unordered_map<std::string, clock::time_point> last_warned_;  // by escaped key
  std::size_t unreported_ = 0;  // skipped rows not logged because too many keys are remembered
  clock::time_point summary_due_{};
  clock::time_point sweep_due_{};
};

}  // namespace galaxies::registry
