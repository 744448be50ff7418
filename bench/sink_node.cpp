#include "sink_node.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <chrono>
#include <stdexcept>

#include "bench_service.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
constexpr auto freeze_timeout = 5s;
constexpr auto goodbye_time = 200ms;

}  // namespace

sink_node::sink_node(const std::string& unix_path, const std::string& cluster) {
  node::attach_options options{.unix_path = unix_path, .cluster = cluster};
  options.heartbeat.interval = std::chrono::milliseconds(0);  // a frozen sink is not dead
  node_ = node::attach(io_, options);
  node_->on(cmd_tp, [this](const message&, responder) { ++arrived_; });
  node_->on_ready([this] {
    std::lock_guard lock(mutex_);
    id_ = node_->id();
    ready_ = true;
  });
  node_->on_disconnected([this](std::error_code ec, std::string_view why) {
    std::lock_guard lock(mutex_);
    disconnected_ = ec.message() + ": " + std::string(why);
  });
  thread_ = std::thread([this] {
    auto work = asio::make_work_guard(io_);
    io_.run();
  });
}

sink_node::~sink_node() {
  resume();
  asio::post(io_, [this] { node_->stop(); });
  std::this_thread::sleep_for(goodbye_time);  // lets the goodbye out
  io_.stop();
  thread_.join();
  node_.reset();
}

node_id sink_node::id() const {
  std::lock_guard lock(mutex_);
  return id_;
}

std::string sink_node::disconnected() const {
  std::lock_guard lock(mutex_);
  return disconnected_;
}

void sink_node::freeze() {
  if (release_) return;
  release_ = std::make_unique<std::promise<void>>();
  auto blocked = std::make_shared<std::promise<void>>();
  auto is_blocked = blocked->get_future();
  asio::post(io_, [blocked, released = release_->get_future().share()] {
    blocked->set_value();
    released.wait();
  });
  if (is_blocked.wait_for(freeze_timeout) != std::future_status::ready)
    throw std::runtime_error("the sink node's thread did not stop in time");
}

void sink_node::resume() {
  if (!release_) return;
  release_->set_value();
  release_.reset();
}

}  // namespace galaxies::bench
