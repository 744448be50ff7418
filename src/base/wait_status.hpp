// How a worker process ended, from the wait status a `nodes_down` entry carries as its detail
// (docs/protocol.md §7): words for people, so that no layer reading it needs <sys/wait.h>.
#pragma once

#include <string>

namespace galaxies::base {

// "killed by signal 9", "exit status 1"; "unknown" for -1 (not reaped in time) or anything else.
std::string describe_wait_status(int wait_status);

}  // namespace galaxies::base
