// Background traffic for tests that attack a cluster: echo requests from one node to another,
// several in flight, until stopped or the first failure. What the attacks must never disturb.
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "support/cluster.hpp"
#include "support/eventually.hpp"

namespace galaxies::test {

// Echo requests from one node to another, several in flight, until stopped or the first failure.
class echo_stream {
 public:
  echo_stream(test_node& from, const node_id& to) {
    from.run([&](node& n) {
      for (int lane = 0; lane < lanes; ++lane)
        asio::co_spawn(n.get_executor(), run(n, to, lane, state_), asio::detached);
    });
  }
  ~echo_stream() { stop(); }

  void stop() {
    state_->stopping = true;
    eventually(15s, [&] { return state_->finished_lanes.load() == lanes; });
  }
  bool stopped() const { return state_->finished_lanes.load() == lanes; }
  std::uint64_t ok() const { return state_->ok.load(); }
  std::uint64_t failed() const { return state_->failed.load(); }
  std::string first_failure() const {
    std::lock_guard lock(state_->mutex);
    return state_->first_failure;
  }

 private:
  static constexpr int lanes = 4;

  struct shared_state {
    std::atomic<bool> stopping{false};
    std::atomic<int> finished_lanes{0};
    std::atomic<std::uint64_t> ok{0};
    std::atomic<std::uint64_t> failed{0};
    std::mutex mutex;
    std::string first_failure;
  };

  static asio::awaitable<void> run(node& n, node_id to, int lane, std::shared_ptr<shared_state> s) {
    for (std::uint64_t k = 0; !s->stopping; ++k) {
      const std::string payload = "lane-" + std::to_string(lane) + "-" + std::to_string(k);
      auto [ec, reply] = co_await n.request(to, "echo", as_bytes(payload), 5s,
                                            asio::experimental::as_tuple(asio::use_awaitable));
      if (!ec && as_text(reply) == payload) {
        ++s->ok;
        continue;
      }
      ++s->failed;
      {
        std::lock_guard lock(s->mutex);
        if (s->first_failure.empty())
          s->first_failure =
              payload + ": " + (ec ? ec.message() : "reply '" + std::string(as_text(reply)) + "'");
      }
      // One failure already fails the test; a lane that kept going against a vanished target
      // would only spin (no_such_node is immediate).
      break;
    }
    ++s->finished_lanes;
  }

  std::shared_ptr<shared_state> state_ = std::make_shared<shared_state>();
};

}  // namespace galaxies::test
