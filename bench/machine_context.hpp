// What a reader of the results needs to know about the machine and the build: cores, load,
// compiler, build type, commit. No paths.
#pragma once

#include <nlohmann/json.hpp>

namespace galaxies::bench {

// {"cores", "cpu", "compiler", "build_type", "commit", "load_average_start": [1, 5, 15 min]}
nlohmann::json machine_context();

// The 1, 5 and 15 minute load averages now.
nlohmann::json load_average();

// VmRSS of a process in KiB, from /proc/PID/status; -1 when it cannot be read.
long rss_kib(int pid);

}  // namespace galaxies::bench
