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
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>

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
    pid_t pid = -1;  // live and not yet reaped, so never a recycled pid: safe to signal
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
                   std::size_t ring_bytes)
      : executor(executor),
        argv(std::move(argv)),
        extra_env(std::move(extra_env)),
        ring_bytes(ring_bytes),
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
  // embedding application may have children of its own.
  void reap() {
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
    slots[i].pid = -1;
    slots[i].last_pid = pid;
    slots[i].last_status = status;
    const std::string how = describe_wait_status(status);
    settle_exit_waiters(pid, status);
    if (closed) return;
    if (cb.exited) cb.exited(i, pid, status);
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

  void spawn(std::size_t i) {
    slot& s = slots[i];
    s.started = clock::now();
    ++s.starts;
    spawned child;
    try {
      auto env = extra_env;
      env.emplace_back(worker_index_env, std::to_string(i));
      child = spawn_worker(argv, env, ring_bytes);
    } catch (const std::exception& e) {
      // Treated as an instant exit: retried with backoff, given up on if it keeps failing. Posted,
      // as start() may be the caller.
      spdlog::error("worker slot {}: {}", i, e.what());
      asio::post(executor,
                 [weak = weak_from_this(), i, how = fmt::format("failed to start ({})", e.what())] {
                   auto self = weak.lock();
                   if (self && !self->closed && !self->stopping) self->after_exit(i, how);
                 });
      return;
    }
    s.pid = child.pid;
    spdlog::debug("worker slot {} started as pid {}", i, child.pid);
    if (cb.spawned) {
      cb.spawned(i, child.pid, child.channel_fd, std::move(child.rings));
    } else {
      ::close(child.channel_fd);
    }
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
      if (s.pid > 0) return;
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
                       std::size_t ring_bytes)
    : impl_(std::make_unique<impl>(impl{
          std::make_shared<supervisor_state>(executor, std::move(argv), workers, policy,
                                             std::move(cb), std::move(extra_env), ring_bytes)})) {}

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
