// The file registry's lock never blocks the event loop: while another writer holds PATH.lock, the
// loop keeps running handlers, the queued edits wait in order and complete once it is released,
// and a lock held past the request timeout makes the store unhealthy like an unreachable server.
// The lock is held from the test's own open file description, exactly as another process holds
// it (flock locks belong to open file descriptions). Every wait is bounded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/steady_timer.hpp>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "registry/file_store.hpp"
#include "registry/registry.hpp"
#include "unit/file_registry_support.hpp"

namespace galaxies::registry {
namespace {

using namespace file_test;

// Holds PATH.lock like another writer would. A watchdog thread lets go after `safety`, so a
// regression to a blocking flock fails the test (the watchdog fired) instead of hanging it.
class lock_holder {
 public:
  explicit lock_holder(const std::string& path, std::chrono::milliseconds safety = 20s) {
    fd_ = ::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0 || ::flock(fd_, LOCK_EX | LOCK_NB) != 0)
      throw std::system_error(errno, std::system_category(), "lock " + path + ".lock");
    watchdog_ = std::thread([this, safety] {
      std::unique_lock lock(mutex_);
      if (!released_cv_.wait_for(lock, safety, [&] { return releasing_; })) {
        fired_ = true;
        ::flock(fd_, LOCK_UN);
      }
    });
  }
  ~lock_holder() { release(); }

  void release() {
    if (!watchdog_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      releasing_ = true;
    }
    released_cv_.notify_all();
    watchdog_.join();
    ::close(fd_);  // closing the last fd of the description releases the lock
  }
  bool watchdog_fired() const { return fired_; }

 private:
  int fd_ = -1;
  std::thread watchdog_;
  std::mutex mutex_;
  std::condition_variable released_cv_;
  bool releasing_ = false;
  std::atomic<bool> fired_ = false;
};

// Counts the ticks of a 5 ms timer: proof that the loop runs handlers.
class ticker {
 public:
  explicit ticker(asio::io_context& io) : timer_(io) { arm(); }
  int ticks() const { return ticks_; }

 private:
  void arm() {
    timer_.expires_after(5ms);
    timer_.async_wait([this](std::error_code ec) {
      if (ec) return;
      ++ticks_;
      arm();
    });
  }
  asio::steady_timer timer_;
  int ticks_ = 0;
};

struct health_log {
  std::vector<std::pair<std::error_code, std::string>> reports;
  registry::health_handler handler() {
    return
        [this](std::error_code ec, const std::string& detail) { reports.emplace_back(ec, detail); };
  }
};

options patient(int ttl_ms = 5000, int refresh_ms = 0) {
  auto opts = short_ttl(ttl_ms, refresh_ms);
  opts.request_timeout = 10s;  // no timeout in these tests, however slow the machine
  return opts;
}

host_record stored_row(const std::string& cluster, const std::string& address) {
  auto row = make_self(cluster, address);
  row.expires_ms = file_store::now_ms() + 60000;
  return row;
}

TEST_F(FileRegistry, AHeldLockLeavesTheLoopRunningAndQueuedEditsCompleteOnRelease) {
  const auto other = stored_row("alpha", "10.0.0.9:9");
  write_raw(path, file_store::serialize({other}));
  auto a = make("alpha", patient());
  const auto self = make_self("alpha", "127.0.0.1:7001");
  view_log views;
  health_log health;

  lock_holder held(path);
  const auto called = clock_type::now();
  a->start(self, views.handler(), health.handler());
  a->remove_stale(other.id, other.address);  // queued behind our registration
  EXPECT_LT(clock_type::now() - called, 2s) << "start() and remove_stale() do not wait";

  ticker tick(io);
  ASSERT_TRUE(run_until(io, [&] { return tick.ticks() >= 20; }))
      << "the loop runs handlers while the lock is held";
  EXPECT_FALSE(stored(path, self.id)) << "nothing is written without the lock";
  EXPECT_TRUE(stored(path, other.id));
  EXPECT_TRUE(health.reports.empty()) << "waiting is not failing";

  held.release();
  const auto released = clock_type::now();
  ASSERT_TRUE(run_until(io, [&] {
    return stored(path, self.id) && !stored(path, other.id) && !health.reports.empty();
  })) << "both queued edits complete once the lock is free";
  EXPECT_LT(clock_type::now() - released, 2s) << "retried within the 100 ms backoff cap";
  EXPECT_FALSE(health.reports.front().first) << health.reports.front().second;
  EXPECT_FALSE(held.watchdog_fired());
  EXPECT_TRUE(run_until(io, [&] { return views.has(self.id) && !views.has(other.id); }));
}

TEST_F(FileRegistry, EditsQueuedBehindTheLockKeepTheirOrder) {
  auto a = make("alpha", patient());
  const auto self = make_self("alpha", "127.0.0.1:7001");
  lock_holder held(path);
  a->start(self, [](auto&) {}, {});  // our row, queued
  bool stopped = false;
  a->stop([&] { stopped = true; });  // its removal, queued behind it
  run_for(io, 50ms);
  EXPECT_FALSE(stopped) << "stop() completes once its removal is written";

  held.release();
  ASSERT_TRUE(run_until(io, [&] { return stopped; }));
  EXPECT_FALSE(stored(path, self.id)) << "the removal was applied after the registration";
  EXPECT_FALSE(held.watchdog_fired());
}

TEST_F(FileRegistry, ALockHeldPastTheRequestTimeoutIsAnUnreachableStore) {
  // A host that never refreshes: its row expires while the lock is held.
  auto dying = stored_row("alpha", "10.0.0.9:9");
  dying.expires_ms = file_store::now_ms() + 1500;
  write_raw(path, file_store::serialize({dying}));
  auto opts = short_ttl(3000, 400);
  opts.request_timeout = 300ms;
  auto a = make("alpha", opts);
  const auto self = make_self("alpha", "127.0.0.1:7001");
  view_log views;
  health_log health;
  a->start(self, views.handler(), health.handler());
  ASSERT_TRUE(run_until(io, [&] { return views.has(dying.id) && !health.reports.empty(); }));
  ASSERT_FALSE(health.reports[0].first);
  const auto views_before = views.views.size();

  lock_holder held(path);
  const auto held_at = clock_type::now();
  ASSERT_TRUE(run_until(io, [&] { return health.reports.size() == 2; }));
  EXPECT_GE(clock_type::now() - held_at, 300ms) << "not before the timeout";
  EXPECT_EQ(health.reports[1].first, std::errc::timed_out);
  EXPECT_NE(health.reports[1].second.find(path + ".lock"), std::string::npos)
      << health.reports[1].second;

  run_for(io, 1500ms);  // the dying row expires; several refreshes are refused meanwhile
  EXPECT_EQ(health.reports.size(), 2u) << "reported once, not on every retry";
  EXPECT_EQ(views.views.size(), views_before)
      << "the last view stands: a row that expired behind the lock may only have missed its "
         "refresh";

  held.release();
  ASSERT_TRUE(run_until(io, [&] {
    return health.reports.size() == 3 && stored(path, self.id) && !views.has(dying.id);
  })) << "the next refresh registers us and the view follows the file again";
  EXPECT_FALSE(health.reports[2].first);
  EXPECT_TRUE(views.has(self.id));
  EXPECT_FALSE(held.watchdog_fired());
}

TEST_F(FileRegistry, ALockHeldAtStartFailsTheFirstRegistration) {
  auto opts = short_ttl(3000, 400);
  opts.request_timeout = 300ms;
  auto a = make("alpha", opts);
  view_log views;
  health_log health;
  lock_holder held(path);
  a->start(make_self("alpha", "127.0.0.1:7001"), views.handler(), health.handler());
  ASSERT_TRUE(run_until(io, [&] { return !health.reports.empty(); }));
  EXPECT_EQ(health.reports[0].first, std::errc::timed_out) << "a master would exit, saying why";
  EXPECT_TRUE(views.views.empty()) << "no view from a store we could not register in";
  EXPECT_FALSE(held.watchdog_fired());
}

TEST_F(FileRegistry, ReadingTakesNoLock) {
  const auto other = stored_row("alpha", "10.0.0.9:9");
  write_raw(path, file_store::serialize({other}));
  lock_holder held(path);
  auto reader = make("alpha");
  const auto rows = read_rows(*reader);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].id, other.id);
}

TEST_F(FileRegistry, TheFileAndItsLockArePrivateToTheUser) {
  const auto saved = ::umask(0);  // the modes must not depend on a careful umask
  auto a = make("alpha");
  view_log views;
  a->start(make_self("alpha", "127.0.0.1:7001"), views.handler(), {});
  const bool seen = run_until(io, [&] { return !views.views.empty(); });
  ::umask(saved);
  ASSERT_TRUE(seen);
  for (const auto& file : {path, path + ".lock"}) {
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << file;
  }
}

TEST_F(FileRegistry, AFileLeftReadableByOthersIsPrivateAgainAfterOurFirstWrite) {
  // Made by hand or by a careless copy: the rows (addresses, socket paths, pids) are nobody
  // else's to read. Every write is a new file renamed over the old one, so it brings its own mode.
  { std::ofstream(path) << "{\"format\":1,\"hosts\":[]}\n"; }
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto a = make("alpha");
  view_log views;
  a->start(make_self("alpha", "127.0.0.1:7001"), views.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !views.views.empty(); }));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(file_store::load(path).rows.size(), 1u) << "and it holds our row";
}

}  // namespace
}  // namespace galaxies::registry
