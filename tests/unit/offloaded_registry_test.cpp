// offloaded_registry: a backend's blocking calls run on a thread of their own, so the caller's
// loop (a master's heartbeats) keeps running meanwhile; what comes back runs on the caller's
// loop, in order, never after destruction, and an exception from the backend is not lost.
#include "registry/offloaded_registry.hpp"

#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/eventually.hpp"

namespace galaxies::registry {
namespace {

using namespace std::chrono_literals;
constexpr auto limit = std::chrono::milliseconds(10000);

// A backend that does what the test tells it, on the thread it is given, and says where it ran.
struct scripted_backend final : registry {
  struct script {
    std::shared_future<void> start_may_return;  // start() blocks until this is ready
    std::promise<void> start_entered;
    std::vector<std::thread::id> ran_on;  // written on the backend's thread only
    bool throw_on_remove = false;
    std::optional<std::thread::id> destroyed_on;
  };

  explicit scripted_backend(script& s) : s_(s) {}
  ~scripted_backend() override { s_.destroyed_on = std::this_thread::get_id(); }

  void start(const host_record& self, view_handler on_view, health_handler on_health) override {
    s_.ran_on.push_back(std::this_thread::get_id());
    s_.start_entered.set_value();
    s_.start_may_return.wait_for(limit);  // bounded: run inline, it would hold the test
    if (on_health) on_health({}, "");
    on_view({self});
    on_view({self, self});
  }
  void remove_stale(const host_id&, std::string_view address) override {
    s_.ran_on.push_back(std::this_thread::get_id());
    if (s_.throw_on_remove) throw std::runtime_error("backend failed at " + std::string(address));
  }
  void read(read_handler done) override {
    s_.ran_on.push_back(std::this_thread::get_id());
    done({}, {host_record{}});
  }
  void stop(std::function<void()> done) override {
    s_.ran_on.push_back(std::this_thread::get_id());
    done();
  }
  std::string describe() const override { return "scripted"; }

  script& s_;
};

class OffloadedRegistry : public ::testing::Test {
 protected:
  std::unique_ptr<offloaded_registry> make() {
    return std::make_unique<offloaded_registry>(
        io.get_executor(),
        [this](const asio::any_io_executor&) { return std::make_unique<scripted_backend>(s); });
  }
  void release_start() { released.set_value(); }

  asio::io_context io{1};
  std::promise<void> released;
  scripted_backend::script s{released.get_future().share(), {}, {}, false, {}};
  host_record self{host_id::random(), "t", "127.0.0.1:1", "", "h", 1, 0};
};

TEST_F(OffloadedRegistry, TheCallersLoopRunsWhileTheBackendBlocks) {
  auto reg = make();
  EXPECT_EQ(reg->describe(), "scripted");
  std::vector<std::size_t> views;
  std::vector<std::thread::id> handlers_ran_on;
  int health_reports = 0;
  reg->start(
      self,
      [&](const std::vector<host_record>& rows) {
        views.push_back(rows.size());
        handlers_ran_on.push_back(std::this_thread::get_id());
      },
      [&](std::error_code ec, const std::string&) {
        EXPECT_FALSE(ec);
        ++health_reports;
        handlers_ran_on.push_back(std::this_thread::get_id());
      });
  ASSERT_EQ(s.start_entered.get_future().wait_for(limit), std::future_status::ready);

  // The backend is inside start(), blocked: a timer of the caller's still fires.
  bool fired = false;
  asio::steady_timer timer(io, 1ms);
  timer.async_wait([&](std::error_code) { fired = true; });
  ASSERT_TRUE(test::run_until(
      io, [&] { return fired; }, limit));
  EXPECT_TRUE(views.empty());

  release_start();
  ASSERT_TRUE(test::run_until(
      io, [&] { return views.size() == 2; }, limit));
  EXPECT_EQ(views, (std::vector<std::size_t>{1, 2})) << "in the order the backend reported";
  EXPECT_EQ(health_reports, 1);
  for (auto id : handlers_ran_on) EXPECT_EQ(id, std::this_thread::get_id());
  ASSERT_EQ(s.ran_on.size(), 1u);
  EXPECT_NE(s.ran_on[0], std::this_thread::get_id()) << "the backend ran on a thread of its own";
}

TEST_F(OffloadedRegistry, ReadAndStopKeepTheCallersLoopBusyUntilTheyComplete) {
  auto reg = make();
  release_start();
  std::vector<std::string> order;
  reg->read([&](std::error_code ec, std::vector<host_record> rows) {
    EXPECT_FALSE(ec);
    EXPECT_EQ(rows.size(), 1u);
    order.push_back("read");
  });
  // Nothing of the caller's is pending but the read: a plain run() must still wait for it.
  io.run_for(limit);
  EXPECT_EQ(order, std::vector<std::string>{"read"});
  ASSERT_TRUE(io.stopped()) << "the loop ran out of work once the read was done";

  io.restart();
  reg->start(self, [&](const std::vector<host_record>&) { order.push_back("view"); }, {});
  reg->stop([&] { order.push_back("stopped"); });
  io.run_for(limit);
  EXPECT_EQ(order, (std::vector<std::string>{"read", "view", "view", "stopped"}));
  EXPECT_TRUE(io.stopped()) << "stopped: no work is left outstanding";
}

TEST_F(OffloadedRegistry, NoHandlerRunsAfterDestructionAndTheBackendDiesOnItsThread) {
  auto reg = make();
  release_start();
  int views = 0;
  bool stopped = false;
  reg->start(self, [&](const std::vector<host_record>&) { ++views; }, {});
  reg->stop([&] { stopped = true; });
  // Wait for the backend to have run both, without running the caller's loop.
  ASSERT_TRUE(test::eventually(limit, [&] { return s.ran_on.size() == 2; }));
  reg.reset();
  ASSERT_TRUE(s.destroyed_on.has_value()) << "destruction waits for the backend's";
  EXPECT_NE(*s.destroyed_on, std::this_thread::get_id()) << "the backend dies on its thread";
  io.run_for(100ms);  // what the backend posted before destruction is still queued here
  EXPECT_EQ(views, 0);
  EXPECT_FALSE(stopped);
}

TEST_F(OffloadedRegistry, AnExceptionOnTheThreadIsRethrownOnTheCallersLoop) {
  auto reg = make();
  s.throw_on_remove = true;
  reg->remove_stale(host_id::random(), "127.0.0.1:9");
  try {
    io.run_for(limit);
    ADD_FAILURE() << "the backend's exception was lost";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "backend failed at 127.0.0.1:9");
  }
  // The thread goes on serving calls after it.
  s.throw_on_remove = false;
  bool read = false;
  reg->read([&](std::error_code, std::vector<host_record>) { read = true; });
  io.restart();
  ASSERT_TRUE(test::run_until(
      io, [&] { return read; }, limit));
}

}  // namespace
}  // namespace galaxies::registry
