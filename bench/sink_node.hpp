// The slow consumer: a node attached to a master with heartbeats off, on an io_context and thread
// of its own, so that the driver can stop it from reading (its thread blocks) without it being
// declared gone, and let it go on later. It counts the bench.tp messages that reach it.
// Threading: every member is called from the driver's thread; the node lives on its own thread.
#pragma once

#include <asio/io_context.hpp>
#include <atomic>
#include <future>
#include <galaxies/node.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace galaxies::bench {

class sink_node {
 public:
  sink_node(const std::string& unix_path, const std::string& cluster);
  ~sink_node();
  sink_node(const sink_node&) = delete;
  sink_node& operator=(const sink_node&) = delete;

  bool ready() const { return ready_; }
  node_id id() const;
  std::string disconnected() const;  // why it lost its master; "" while connected

  // Blocks the node's thread (returns once it is blocked) / lets it run again.
  void freeze();
  void resume();

  std::uint64_t arrived() const { return arrived_; }
  void reset_count() { arrived_ = 0; }

 private:
  asio::io_context io_{1};
  std::unique_ptr<node> node_;
  std::atomic<bool> ready_{false};
  std::atomic<std::uint64_t> arrived_{0};
  mutable std::mutex mutex_;
  node_id id_;
  std::string disconnected_;
  std::unique_ptr<std::promise<void>> release_;
  std::thread thread_;
};

}  // namespace galaxies::bench
