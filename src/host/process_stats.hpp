// This process's own figures, as Prometheus' process_* metrics name them: read from /proc.
#pragma once

#include <nlohmann/json_fwd.hpp>

namespace galaxies::host {

// {"rss_bytes", "open_fds", "max_fds", "cpu_seconds", "start_time_seconds"}; a figure /proc does
// not give is left out. And "log_lines_dropped" (log_setup.hpp), which /proc does not know.
nlohmann::json process_stats();

}  // namespace galaxies::host
