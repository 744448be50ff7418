#include "process/supervisor.hpp"

#include <signal.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "process/fork_server.hpp"
#include "process/spawn.hpp"
#include "transport/shm_channel.hpp"

namespace galaxies::process {
namespace {

using clock = restart_tracker::clock;

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(status));
    return name != nullptr ? fmt::format("was killed by SIG{}", name)
                           : fmt::format("was killed by signal {}", WTERMSIG(status));
  }
  return fmt::format("changed state (wait status {:#x})", status);
}

// Everything the asynchronous handlers touch lives here. A pending handler holds only a weak_ptr,
// so it neither keeps the state alive after the supervisor is gone nor touches it once freed; a
// running one holds a strong reference, so a user callback that destroys the supervisor does not
// free the state under the handler that called it (`closed` tells that handler to stop there).
struct supervisor_state : std::enable_shared_from_this<supervisor_state> {
  struct slot {
    explicit slot(const asio::any_io_executor& executor, const restart_policy& policy)
        : tracker(policy), respawn_timer(executor) {}
    pid_t pid = -1;         // live and not yet reaped, so never a recycled pid: safe to signal
    bool spawning = false;  // its process is being started on the spawning thread
    bool adopted = false;   // its process was handed to callbacks::spawned
    clock::time_point started{};
    std::uint64_t starts = 0;
    bool given_up = false;
    pid_t last_pid = -1;  // the slot's last reaped worker, and its wait status
    int last_status = 0;
    restart_tracker tracker;
    asio::steady_timer respawn_timer;
  };

  supervisor_state(const asio::any_io_executor& executor, std::vector<std::string> argv,
                   std::size_t workers, restart_policy policy, supervisor::callbacks cb,
                   std::vector<std::pair<std::string, std::string>> extra_env,
                   std::size_t ring_bytes, std::shared_ptr<fork_server> forks)
      : executor(executor),
        argv(std::move(argv)),
        extra_env(std::move(extra_env)),
        ring_bytes(ring_bytes),
        forks(std::move(forks)),
        policy(policy),
        cb(std::move(cb)),
        sigchld(executor),
        kill_timer(executor) {
    slots.reserve(workers);
    for (std::size_t i = 0; i < workers; ++i) slots.emplace_back(executor, policy);
  }

  asio::any_io_executor executor;
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> extra_env;
  std::size_t ring_bytes;
  std::shared_ptr<fork_server> forks;  // starts the workers, when set; else spawn_worker
  restart_policy policy;
  supervisor::callbacks cb;
  asio::signal_set sigchld;
  asio::steady_timer kill_timer;
  std::vector<slot> slots;
  std::vector<std::function<void()>> done;
  // await_exit() callers, by pid; each holds a timer for its `within`.
  struct exit_waiter {
    std::function<void(int)> done;
    std::shared_ptr<asio::steady_timer> timer;
  };
  std::unordered_multimap<pid_t, exit_waiter> exit_waiters;
  bool started = false;
  bool stopping = false;
  bool closed = false;
  // Where workers are started. posix_spawn returns only once the child has called exec, and a
  // child waits for a core like any process: on a saturated machine that took a master's loop
  // away for up to 1.3 s, no heartbeat reaching its workers meanwhile, which then left it for
  // silence (bench/RESULTS.md, 2026-12-05). Only this thread waits now. Its jobs hold copies and
  // a weak_ptr, nothing of this state; destroyed first (declared last), it finishes the spawn in
  // progress, if any, and drops the rest.
  asio::thread_pool spawner{1};

  void start() {
    if (started) throw std::logic_error("supervisor::start called twice");
    started = true;
    if (stopping) return;
    // Installed before the first spawn, so no exit can go unnoticed.
    sigchld.add(SIGCHLD);
    wait_for_sigchld();
    for (std::size_t i = 0; i < slots.size() && !closed && !stopping; ++i) spawn(i);
  }

  void wait_for_sigchld() {
    sigchld.async_wait([weak = weak_from_this()](const std::error_code& ec, int) {
      auto self = weak.lock();
      if (!self || self->closed || ec) return;
      self->reap();
      if (!self->closed) self->wait_for_sigchld();
    });
  }

  // Called in handlers only (never inside a caller's start()/stop()), so user callbacks are not
  // reentered from their own calls into the supervisor.
  void post_reap() {
    asio::post(executor, [weak = weak_from_this()] {
      auto self = weak.lock();
      if (self && !self->closed) self->reap();
    });
  }

  // One SIGCHLD may stand for several exits; only our own children are waited for, since the
  // embedding application may have children of its own. With a fork server, this process is
  // its workers' subreaper: their orphans come here, and are reaped too.
  void reap() {
    if (forks) forks->reap_strays();
    for (std::size_t i = 0; i < slots.size() && !closed; ++i) {
      const pid_t pid = slots[i].pid;
      if (pid <= 0) continue;
      int status = 0;
      pid_t rc;
      do rc = ::waitpid(pid, &status, WNOHANG);
      while (rc < 0 && errno == EINTR);
      if (rc == 0) continue;
      if (rc < 0) {
        // ECHILD: something else (a waitpid(-1) elsewhere in the process) took the status.
        spdlog::warn("worker slot {} (pid {}) was reaped behind the supervisor's back: {}", i, pid,
                     std::generic_category().message(errno));
        status = W_EXITCODE(255, 0);
      }
      on_reaped(i, pid, status);
    }
  }

  void on_reaped(std::size_t i, pid_t pid, int status) {
    if (forks) forks->forget(pid);
    const bool adopted = std::exchange(slots[i].adopted, false);
    slots[i].pid = -1;
    slots[i].last_pid = pid;
    slots[i].last_status = status;
    const std::string how = describe_wait_status(status);
    settle_exit_waiters(pid, status);
    if (closed) return;
    if (cb.exited && adopted) cb.exited(i, pid, status);
    if (closed) return;
    if (stopping) {
      spdlog::debug("worker slot {} (pid {}) {} while stopping", i, pid, how);
      finish_stop_if_idle();
      return;
    }
    after_exit(i, how);
  }

  void after_exit(std::size_t i, const std::string& how) {
    slot& s = slots[i];
    const auto decision = s.tracker.on_exit(s.started, clock::now());
    if (decision.give_up) {
      const std::string why =
          policy.respawn
              ? fmt::format(
                    "worker slot {} exited {} times in {:g} s; not restarting it (last: {})", i,
                    policy.crash_loop_exits, policy.crash_window.count() / 1000.0, how)
              : fmt::format("worker slot {} {}; not restarting it (respawn is off)", i, how);
      spdlog::error("{}", why);
      s.given_up = true;
      if (cb.gave_up) cb.gave_up(i, why);
      return;
    }
    spdlog::warn("worker slot {} {}; restarting it in {} ms", i, how, decision.delay.count());
    s.respawn_timer.expires_after(decision.delay);
    s.respawn_timer.async_wait([weak = weak_from_this(), i](const std::error_code& ec) {
      auto self = weak.lock();
      if (!self || self->closed || self->stopping || ec) return;
      self->spawn(i);
    });
  }

  // Starts slot i's process on the spawning thread; adopted here once it runs (adopt), or
  // treated as an instant exit when it could not be started.
  void spawn(std::size_t i) {
    slot& s = slots[i];
    s.started = clock::now();
    ++s.starts;
    s.spawning = true;
    auto env = extra_env;
    env.emplace_back(worker_index_env, std::to_string(i));
    asio::post(spawner, [weak = weak_from_this(), loop = executor, argv = argv, forks = forks,
                         env = std::move(env), ring_bytes = ring_bytes, i]() mutable {
      spawn_result result;
      try {
        result.child =
            forks ? forks->spawn(argv, env, ring_bytes) : spawn_worker(argv, env, ring_bytes);
      } catch (const std::exception& e) {
        result.error = e.what();
      }
      asio::post(loop, [weak = std::move(weak), i, result = std::move(result)]() mutable {
        auto self = weak.lock();
        if (!self || self->closed) return result.abandon();
        self->adopt(i, std::move(result));
      });
    });
  }

  struct spawn_result {
    spawned child;
    std::string error;  // empty: `child` runs
    // Nobody adopts it (the supervisor is gone): its channel's end ends it.
    void abandon() {
      if (child.channel_fd >= 0) ::close(std::exchange(child.channel_fd, -1));
    }
  };

  void adopt(std::size_t i, spawn_result result) {
    slot& s = slots[i];
    s.spawning = false;
    if (!result.error.empty()) {
      // Leftover processes that exited while this start was in flight were held for its
      // adoption (fork_server::reap_strays); none follows now, so they are reaped here.
      if (!closed) post_reap();
      // Treated as an instant exit: retried with backoff, given up on if it keeps failing.
      spdlog::error("worker slot {}: {}", i, result.error);
      if (stopping) return finish_stop_if_idle();
      return after_exit(i, fmt::format("failed to start ({})", result.error));
    }
    s.pid = result.child.pid;
    spdlog::debug("worker slot {} started as pid {}", i, s.pid);
    if (stopping) {
      // Stopped while it started: never adopted, it has nothing to finish, and nothing else
      // could tell it to stop.
      result.abandon();
      ::kill(s.pid, SIGKILL);
    } else {
      s.adopted = true;
      if (cb.spawned)
        cb.spawned(i, s.pid, std::exchange(result.child.channel_fd, -1),
                   std::move(result.child.rings));
      else
        result.abandon();
    }
    // Exits that came before the pid was known are reaped now.
    if (!closed) post_reap();
  }

  void stop(std::chrono::milliseconds grace, std::function<void()> on_done,
            const std::function<bool(pid_t)>& tell) {
    const bool again = std::exchange(stopping, true);
    if (on_done) done.push_back(std::move(on_done));
    for (auto& s : slots) s.respawn_timer.cancel();
    bool any_live = false;
    for (const auto& s : slots) {
      if (s.pid > 0) {
        if (again || !tell || !tell(s.pid)) ::kill(s.pid, SIGTERM);
        any_live = true;
      }
      any_live |= s.spawning;
    }
    if (any_live) {
      kill_timer.expires_after(grace);
      kill_timer.async_wait([weak = weak_from_this()](const std::error_code& ec) {
        auto self = weak.lock();
        if (!self || self->closed || ec) return;
        for (const auto& s : self->slots) {
          if (s.pid > 0) {
            spdlog::warn("worker pid {} still running after the stop grace period; killing it",
                         s.pid);
            ::kill(s.pid, SIGKILL);
          }
        }
      });
    }
    finish_stop_if_idle();
  }

  // `done` always runs from the executor, never inside the stop() call.
  void finish_stop_if_idle() {
    if (!stopping || done.empty()) return;
    for (const auto& s : slots) {
      if (s.pid > 0 || s.spawning) return;
    }
    kill_timer.cancel();
    asio::post(executor, [weak = weak_from_this(), callbacks = std::exchange(done, {})] {
      auto self = weak.lock();
      if (!self || self->closed) return;
      for (const auto& f : callbacks) f();
    });
  }

  // The waiters run from handlers only; one may destroy the supervisor (then `closed` is set).
  void settle_exit_waiters(pid_t pid, int status) {
    auto [first, last] = exit_waiters.equal_range(pid);
    std::vector<exit_waiter> due;
    for (auto it = first; it != last; ++it) due.push_back(std::move(it->second));
    exit_waiters.erase(first, last);
    for (auto& w : due) {
      if (closed) return;
      w.timer->cancel();
      w.done(status);
    }
  }

  void await_exit(pid_t pid, std::chrono::milliseconds within, std::function<void(int)> on_exit) {
    const bool live = pid > 0 && std::any_of(slots.begin(), slots.end(),
                                             [pid](const slot& s) { return s.pid == pid; });
    if (!live) {
      int status = -1;
      for (const auto& s : slots)
        if (s.last_pid == pid && pid > 0) status = s.last_status;
      return on_exit(status);
    }
    auto timer = std::make_shared<asio::steady_timer>(executor, within);
    timer->async_wait([weak = weak_from_this(), pid, raw = timer.get()](const std::error_code& ec) {
      auto self = weak.lock();
      if (!self || self->closed || ec) return;
      auto [first, last] = self->exit_waiters.equal_range(pid);
      for (auto it = first; it != last; ++it) {
        if (it->second.timer.get() != raw) continue;
        auto on_exit = std::move(it->second.done);
        self->exit_waiters.erase(it);
        return on_exit(-1);
      }
    });
    exit_waiters.emplace(pid, exit_waiter{std::move(on_exit), std::move(timer)});
  }

  bool kill_worker(pid_t pid) {
    for (const auto& s : slots)
      if (pid > 0 && s.pid == pid) return ::kill(pid, SIGKILL) == 0;
    return false;
  }

  void close() {
    closed = true;
    spawner.stop();  // spawns not yet begun are dropped
    for (auto& [pid, w] : exit_waiters) w.timer->cancel();
    exit_waiters.clear();
    std::error_code ignored;
    sigchld.cancel(ignored);
    kill_timer.cancel();
    for (auto& s : slots) s.respawn_timer.cancel();
  }
};

}  // namespace

struct supervisor::impl {
  std::shared_ptr<supervisor_state> state;
};

supervisor::supervisor(const asio::any_io_executor& executor, std::vector<std::string> argv,
                       std::size_t workers, restart_policy policy, callbacks cb,
                       std::vector<std::pair<std::string, std::string>> extra_env,
                       std::size_t ring_bytes, std::shared_ptr<fork_server> forks)
    : impl_(std::make_unique<impl>(impl{std::make_shared<supervisor_state>(
          executor, std::move(argv), workers, policy, std::move(cb), std::move(extra_env),
          ring_bytes, std::move(forks))})) {}

// Live workers are left running and unreaped (they exit when their channel closes, and the master
// is usually exiting too); call stop() first to end and reap them. Pending handlers find the
// state closed or gone and do nothing.
supervisor::~supervisor() {
  impl_->state->close();
}

void supervisor::start() {
  impl_->state->start();
}

void supervisor::stop(std::chrono::milliseconds grace, std::function<void()> done,
                      const std::function<bool(pid_t)>& tell) {
  impl_->state->stop(grace, std::move(done), tell);
}

std::vector<supervisor::slot_report> supervisor::slots() const {
  using state = slot_report::state;
  const auto& st = *impl_->state;
  std::vector<slot_report> out;
  out.reserve(st.slots.size());
  for (std::size_t i = 0; i < st.slots.size(); ++i) {
    const auto& s = st.slots[i];
    slot_report r;
    r.slot = i;
    r.pid = s.pid > 0 ? s.pid : 0;
    r.starts = s.starts;
    r.what = s.pid > 0     ? (st.stopping ? state::stopping : state::running)
             : s.given_up  ? state::given_up
             : st.stopping ? state::stopped
                           : state::restarting;
    out.push_back(r);
  }
  return out;
}

bool supervisor::kill(pid_t pid) {
  return impl_->state->kill_worker(pid);
}

void supervisor::await_exit(pid_t pid, std::chrono::milliseconds within,
                            std::function<void(int)> done) {
  impl_->state->await_exit(pid, within, std::move(done));
}

std::vector<pid_t> supervisor::live_pids() const {
  std::vector<pid_t> pids;
  for (const auto& s : impl_->state->slots) {
    if (s.pid > 0) pids.push_back(s.pid);
  }
  return pids;
}

}  // namespace galaxies::process
