// How long a process has waited for a core: the run_delay of its main thread, the second field
// of /proc/PID/schedstat (Linux's sched_info: nanoseconds spent runnable on a run queue while
// another task ran). A deadline set for a process of this machine asks it before it blames the
// process: one that spent the time waiting for a core is starved by a busy machine, not stuck,
// and one that is stuck (deadlocked, blocked, stopped) adds nothing to it (docs/protocol.md §8.1).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace galaxies::process {

// The run_delay of a schedstat text: "<ns on a cpu> <ns waiting on a run queue> <timeslices>\n".
// nullopt for anything else.
std::optional<std::chrono::nanoseconds> parse_schedstat(std::string_view text) noexcept;

// The first two figures of a schedstat line: time on a cpu, and time waiting on a run queue
// (run_delay). nullopt for anything but three numbers.
struct schedstat {
  std::chrono::nanoseconds on_cpu;
  std::chrono::nanoseconds waited;
};
std::optional<schedstat> parse_schedstat_fields(std::string_view text) noexcept;

// The run_delay of process `pid` (its main thread) now; nullopt when the process is gone or the
// kernel keeps no such figure (built without CONFIG_SCHED_INFO).
std::optional<std::chrono::nanoseconds> cpu_wait(pid_t pid) noexcept;

// What one thread waited for a core, a wait still going on included: process `pid`'s main
// thread, or its thread `tid`. The kernel adds a wait to run_delay only when it ends
// (sched_info_arrive): a master queued behind 300 runnable tasks for 2.7 s showed none of it while
// its workers judged its silence, and they closed on it (bench/RESULTS.md, seventeenth session).
// A meter asked again while the thread is runnable ('R' in its stat) and neither its time on a
// cpu nor its run_delay has moved counts the time since it first saw those figures as waited too.
// Never goes back.
class cpu_wait_meter {
 public:
  using clock = std::chrono::steady_clock;
  explicit cpu_wait_meter(pid_t pid) noexcept : cpu_wait_meter(pid, pid) {}
  cpu_wait_meter(pid_t pid, pid_t tid) noexcept : pid_(pid), tid_(tid) {}
  // nullopt: the thread is gone, or the kernel keeps no schedstat.
  std::optional<std::chrono::nanoseconds> waited(clock::time_point now) noexcept;
  pid_t tid() const noexcept { return tid_; }

 private:
  pid_t pid_;
  pid_t tid_;
  std::optional<schedstat> last_;
  clock::time_point unmoved_since_{};
  std::chrono::nanoseconds reported_{0};
};

// What all threads of process `pid` have waited for a core, waits going on included (a meter
// per thread): for a deadline whose work runs on a thread other than the main one, such as a
// master's first registration on its registry's thread, which waits for a core while the main
// thread sleeps. A thread that ended keeps what it was last seen to wait. A sum, so threads
// waiting at once count each: callers bound what they forgive.
class threads_cpu_wait_meter {
 public:
  using clock = cpu_wait_meter::clock;
  explicit threads_cpu_wait_meter(pid_t pid) noexcept : pid_(pid) {}
  // nullopt: the process is gone, or the kernel keeps no schedstat.
  std::optional<std::chrono::nanoseconds> waited(clock::time_point now);

 private:
  struct thread {
    cpu_wait_meter meter;
    std::chrono::nanoseconds waited{0};  // when last seen
    bool listed = false;
  };
  pid_t pid_;
  std::vector<thread> threads_;
  std::chrono::nanoseconds ended_{0};  // by threads that have ended
  std::chrono::nanoseconds reported_{0};
};

// A cpu_wait_meter of process `pid` read at the time of each call, for a link's deadlines
// (transport::basic_link::forgive_peer_cpu_wait). Each copy of the probe is a meter of its own.
// Held by value: a polymorphic object (a shared_ptr's control block) destroyed while the process
// is out of descriptors made UBSan's vptr check, which needs a pipe to read memory, report it.
std::function<std::optional<std::chrono::nanoseconds>()> cpu_wait_probe(pid_t pid);

}  // namespace galaxies::process
