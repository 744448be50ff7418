// The figures of /proc/PID/stat (proc(5)) that galaxies reads: of its own process for its status,
// of the processes it supervises or measures. One parser for all of them, because the line is
// hostile in one place: the command name (field 2) may hold anything, spaces and ')' included,
// so the fields are counted from its last ')'.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace galaxies::process {

struct proc_stat {
  char state = 0;                  // field 3: 'R' runnable or running, 'S', 'D', 'Z', ...
  pid_t parent = 0;                // field 4
  std::uint64_t minor_faults = 0;  // field 10: page faults that read no disk
  std::uint64_t user_ticks = 0;    // field 14: CPU time in user mode, in clock ticks
  std::uint64_t system_ticks = 0;  // field 15: in kernel mode
  // Fields 16 and 17: the same of its children it has waited for, those children's included.
  std::uint64_t reaped_user_ticks = 0;
  std::uint64_t reaped_system_ticks = 0;
  std::uint64_t started_ticks = 0;  // field 22: start time, in clock ticks after boot
};

// nullopt for anything but a stat line with at least 22 fields of the expected kinds.
std::optional<proc_stat> parse_proc_stat(std::string_view text) noexcept;

// Process `pid` (CPU time and faults over all its threads; the state is its main thread's), or
// one of its threads (`tid`). nullopt when it is gone or the line cannot be read.
std::optional<proc_stat> read_proc_stat(pid_t pid) noexcept;
std::optional<proc_stat> read_proc_stat(pid_t pid, pid_t tid) noexcept;

// Clock ticks per second, the unit of the *_ticks figures (sysconf(_SC_CLK_TCK)).
double clock_ticks_per_second() noexcept;

}  // namespace galaxies::process
