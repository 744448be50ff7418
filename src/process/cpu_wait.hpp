// How long a process has waited for a core: the run_delay of its main thread, the second field
// of /proc/PID/schedstat (Linux's sched_info: nanoseconds spent runnable on a run queue while
// another task ran). A deadline set for a process of this machine asks it before it blames the
// process: one that spent the time waiting for a core is starved by a busy machine, not stuck,
// and one that is stuck (deadlocked, blocked, stopped) adds nothing to it (docs/protocol.md §8.1).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string_view>

namespace galaxies::process {

// The run_delay of a schedstat text: "<ns on a cpu> <ns waiting on a run queue> <timeslices>\n".
// nullopt for anything else.
std::optional<std::chrono::nanoseconds> parse_schedstat(std::string_view text) noexcept;

// The run_delay of process `pid` (its main thread) now; nullopt when the process is gone or the
// kernel keeps no such figure (built without CONFIG_SCHED_INFO).
std::optional<std::chrono::nanoseconds> cpu_wait(pid_t pid) noexcept;

// The run_delay of every live thread of process `pid`, summed (/proc/PID/task/*/schedstat): for
// a deadline whose work runs on a thread other than the main one, such as a master's first
// registration on its registry's thread, which waits for a core while the main thread sleeps.
// A sum, so threads waiting at once count each: callers bound what they forgive. nullopt as
// cpu_wait.
std::optional<std::chrono::nanoseconds> threads_cpu_wait(pid_t pid) noexcept;

}  // namespace galaxies::process
