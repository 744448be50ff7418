// A registry backend run on a thread of its own, behind the same interface, so that a store's
// stalls never reach the caller's loop, which runs a master's heartbeats: its peers would take
// its silence for death. The file backend's rename() and unlink() take the directory's lock, and
// on a saturated machine the master holding it may wait a second for a core while every other
// master on the machine waits for it in the kernel (bench/RESULTS.md, 2026-12-04: masters in
// state D in do_renameat2 for 0.3-1 s); hiredis resolves a Redis host name with a blocking
// getaddrinfo(), seconds long when DNS is down. make_registry wraps every backend in one.
// Calls are posted to the thread in the order they are made; every handler is posted back to the
// caller's executor and none runs after destruction. An exception escaping the backend on its
// thread is rethrown on the caller's executor, as it would have been had the backend run there.
// While started (until stop() completes), and while any call is pending, the caller's executor
// has work outstanding, as it has with a backend whose timers run on it.
// Threading: as every registry, call every member on the caller's executor.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "registry/registry.hpp"

namespace galaxies::registry {

class offloaded_registry final : public registry {
 public:
  // Builds the backend for the thread's executor (here, on the caller's thread: whatever it
  // throws, the caller gets).
  using factory = std::function<std::unique_ptr<registry>(const asio::any_io_executor&)>;

  offloaded_registry(const asio::any_io_executor& caller, const factory& make);
  // Destroys the backend on its thread and joins it: waits for a call in progress there, if any.
  ~offloaded_registry() override;

  offloaded_registry(const offloaded_registry&) = delete;
  offloaded_registry& operator=(const offloaded_registry&) = delete;

  void start(const host_record& self, view_handler on_view, health_handler on_health) override;
  void remove_stale(const host_id& stale, std::string_view address) override;
  void read(read_handler done) override;
  void stop(std::function<void()> done) override;
  std::string describe() const override { return description_; }
  // The backend's, which it updates on its thread (atomics); made in the constructor, before
  // the thread runs anything, and destroyed only in the destructor.
  const refresh_stats& refreshes() const noexcept override { return backend_->refreshes(); }

 private:
  // An executor of the caller's that counts as outstanding work while it exists.
  asio::any_io_executor tracked_caller() const;
  // Runs `call` on the thread, the caller's executor busy meanwhile; what it throws is rethrown
  // there.
  void on_thread(std::function<void(const asio::any_io_executor& caller)> call);
  void run_thread();

  asio::any_io_executor caller_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> keep_running_;
  // Used and destroyed on the thread only, once constructed.
  std::unique_ptr<registry> backend_;
  std::string description_;
  asio::any_io_executor started_work_;  // tracked while started
  // Read and written on the caller's executor only; the thread merely carries copies.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::thread thread_;
};

}  // namespace galaxies::registry
