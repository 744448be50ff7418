// A node judges its master's silence as a master judges a worker's (protocol.md §8.1): forgiven
// while the master's process waits for a core, within the bound; at the plain limit otherwise.
// The probe is what run() (a worker) and node::attach (an attached node) give it.
#include <chrono>
#include <optional>

#include "node_core_harness.hpp"

namespace galaxies::detail::test {
namespace {

class NodeMasterSilence : public node_core_harness {
 protected:
  NodeMasterSilence() { welcome_heartbeat_ms_ = 20; }

  void configure(node_core::settings& s) override {
    s.heartbeat = {std::chrono::milliseconds(20), 5};  // declared gone after 100 ms of silence
    s.master_cpu_wait = [this]() -> std::optional<std::chrono::nanoseconds> {
      if (!master_starved_) return std::chrono::nanoseconds{0};
      return std::chrono::steady_clock::now() - since_;
    };
  }

  // Runs the node's loop until it gives up on its master, for at most `limit`.
  bool closed_within(std::chrono::milliseconds limit) {
    bool closed = false;
    core_->events().ended = [&](std::error_code) { closed = true; };
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!closed && std::chrono::steady_clock::now() < deadline) io_.run_for(5ms);
    core_->events().ended = nullptr;
    return closed;
  }

  bool master_starved_ = false;
  const std::chrono::steady_clock::time_point since_ = std::chrono::steady_clock::now();
};

TEST_F(NodeMasterSilence, AMasterThatWaitsForACoreIsForgivenWithinTheBound) {
  master_starved_ = true;
  EXPECT_FALSE(closed_within(300ms)) << "three times the limit, while its master waited";
  EXPECT_TRUE(closed_within(8s)) << "never forever: 40 detection times at most";
}

TEST_F(NodeMasterSilence, AMasterThatWaitsForNothingIsGoneAtItsLimit) {
  EXPECT_TRUE(closed_within(3s));
}

}  // namespace
}  // namespace galaxies::detail::test
