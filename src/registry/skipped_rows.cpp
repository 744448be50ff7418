#include "registry/skipped_rows.hpp"

#include <spdlog/spdlog.h>

#include "base/text.hpp"

namespace galaxies::registry {

skipped_rows_log::skipped_rows_log(std::string where, std::chrono::milliseconds interval,
                                   std::size_t max_remembered)
    : where_(std::move(where)), interval_(interval), max_remembered_(max_remembered) {}

bool skipped_rows_log::skipped(std::string_view key, std::error_code why, clock::time_point now) {
  // Escaped and bounded before it is stored: the key itself is hostile text.
  std::string shown = base::printable(key);
  const auto known = last_warned_.find(shown);
  if (known != last_warned_.end()) {
    if (now - known->second < interval_) return false;
    known->second = now;
  } else {
    // Swept at most once per interval: a store of 100 000 bad rows must not cost a sweep each.
    if (last_warned_.size() >= max_remembered_ && now >= sweep_due_) {
      forget_older_than(now - interval_);
      sweep_due_ = now + interval_;
    }
    if (last_warned_.size() >= max_remembered_) {
      ++unreported_;
      if (now < summary_due_) return false;
      spdlog::warn("registry {}: skipping {} more bad row(s) not listed one by one", where_,
                   unreported_);
      unreported_ = 0;
      summary_due_ = now + interval_;
      return true;
    }
    last_warned_.emplace(shown, now);
  }
  spdlog::warn("registry {}: skipping row '{}': {}", where_, shown, why.message());
  return true;
}

void skipped_rows_log::forget_older_than(clock::time_point cutoff) {
  std::erase_if(last_warned_, [&](const auto& entry) { return entry.second <= cutoff; });
}

}  // namespace galaxies::registry
