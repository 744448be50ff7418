// test_node: a node attached from the test process, on its own io_context thread.
#include <algorithm>
#include <asio/post.hpp>
#include <stdexcept>
#include <type_traits>

#include "support/cluster.hpp"

namespace galaxies::test {
namespace {

// Every call into the node's thread is bounded: a wedged node fails the test, never hangs it.
constexpr auto call_deadline = 10s;
// A goodbye to the master is one small write; past this the io_context is stopped outright.
constexpr auto stop_deadline = 5s;
// A request's own timeout completes it; this is only the margin for a wedged node thread.
constexpr auto request_margin = 5s;

}  // namespace

test_node::test_node(const std::string& unix_path, const std::string& cluster,
                     heartbeat_options heartbeat) {
  node::attach_options opts;
  opts.unix_path = unix_path;
  opts.cluster = cluster;
  opts.heartbeat = heartbeat;
  node_ = node::attach(io_, std::move(opts));
  // Set before the thread starts: no callback can run before io_.run().
  node_->on_ready([this] {
    std::lock_guard lock(mutex_);
    ready_ = true;
    ready_changed_.notify_all();
  });
  node_->on_node_joined([this](const node_info& n) {
    std::lock_guard lock(mutex_);
    joined_.push_back(n.id.to_string());
  });
  node_->on_node_left([this](const node_info& n, leave_reason why, int) {
    std::lock_guard lock(mutex_);
    left_.push_back(n.id.to_string());
    left_reasons_.emplace_back(n.id.to_string(), why);
    membership_log_.push_back("left " + n.id.to_string());
  });
  node_->on_group_joined([this](std::string_view group, const node_info& n) {
    std::lock_guard lock(mutex_);
    membership_log_.push_back("+" + std::string(group) + " " + n.id.to_string());
  });
  node_->on_group_left([this](std::string_view group, const node_info& n) {
    std::lock_guard lock(mutex_);
    membership_log_.push_back("-" + std::string(group) + " " + n.id.to_string());
  });
  node_->on_disconnected([this](std::error_code, std::string_view) {
    std::lock_guard lock(mutex_);
    disconnected_ = true;
    ready_changed_.notify_all();
  });
  work_.emplace(io_.get_executor());
  std::promise<void> finished;
  finished_ = finished.get_future();
  thread_ = std::thread([this, finished = std::move(finished)]() mutable {
    io_.run();
    finished.set_value();
  });
}

test_node::~test_node() {
  // The node is destroyed on its own thread (its destructor says goodbye there); then the thread
  // ends once nothing is left to do, or is stopped.
  asio::post(io_, [this] { node_.reset(); });
  work_.reset();
  if (finished_.wait_for(stop_deadline) != std::future_status::ready) io_.stop();
  thread_.join();
}

void test_node::freeze_until(std::shared_future<void> thaw) {
  asio::post(io_, [thaw = std::move(thaw)] { thaw.wait_for(std::chrono::minutes(5)); });
}

template <class Fn>
auto test_node::call(Fn&& fn) {
  using result = std::invoke_result_t<Fn&>;
  if (std::this_thread::get_id() == thread_.get_id()) return fn();
  auto task = std::make_shared<std::packaged_task<result()>>(std::forward<Fn>(fn));
  auto done = task->get_future();
  asio::post(io_, [task] { (*task)(); });
  if (done.wait_for(call_deadline) != std::future_status::ready)
    throw std::runtime_error("test_node: the node's thread did not answer within 10 s");
  return done.get();
}

bool test_node::wait_ready(std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  return ready_changed_.wait_for(lock, deadline, [&] { return ready_ || disconnected_; }) && ready_;
}

node_id test_node::id() {
  return call([this] { return node_->id(); });
}

std::vector<node_info> test_node::nodes() {
  return call([this] { return node_->nodes(); });
}

node_counters test_node::counters() {
  return call([this] { return node_->counters(); });
}

std::vector<peer_traffic> test_node::peer_counters() {
  return call([this] { return node_->peer_counters(); });
}

void test_node::run(const std::function<void(node&)>& fn) {
  call([&] { fn(*node_); });
}

std::future<std::pair<std::error_code, bytes>> test_node::request_async(
    const node_id& to, std::string_view command, std::string_view payload,
    std::chrono::milliseconds timeout) {
  auto result = std::make_shared<std::promise<std::pair<std::error_code, bytes>>>();
  auto future = result->get_future();
  // Command and payload are copied into the frame during the call, so views are enough.
  call([&] {
    node_->request(to, command, as_bytes(payload), timeout,
                   [result](std::error_code ec, bytes reply) {
                     result->set_value({ec, std::move(reply)});
                   });
  });
  return future;
}

std::pair<std::error_code, bytes> test_node::request(const node_id& to, std::string_view command,
                                                     std::string_view payload,
                                                     std::chrono::milliseconds timeout) {
  auto result = request_async(to, command, payload, timeout);
  if (result.wait_for(timeout + request_margin) != std::future_status::ready)
    return {std::make_error_code(std::errc::timed_out), {}};
  return result.get();
}

std::error_code test_node::send(const node_id& to, std::string_view command,
                                std::string_view payload) {
  return call([&] { return node_->send(to, command, as_bytes(payload)); });
}

std::vector<std::string> test_node::membership_log() const {
  std::lock_guard lock(mutex_);
  return membership_log_;
}

std::vector<std::string> test_node::members(std::string_view group) {
  return call([&] {
    std::vector<std::string> ids;
    for (const auto& n : node_->members(group)) ids.push_back(n.id.to_string());
    std::sort(ids.begin(), ids.end());
    return ids;
  });
}

std::vector<std::string> test_node::joined() const {
  std::lock_guard lock(mutex_);
  return joined_;
}

std::vector<std::string> test_node::left() const {
  std::lock_guard lock(mutex_);
  return left_;
}

std::vector<std::pair<std::string, leave_reason>> test_node::left_reasons() const {
  std::lock_guard lock(mutex_);
  return left_reasons_;
}

bool test_node::disconnected() const {
  std::lock_guard lock(mutex_);
  return disconnected_;
}

}  // namespace galaxies::test
