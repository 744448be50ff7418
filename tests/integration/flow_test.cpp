// A sender faster than its receiver, on real hosts: every message send() accepted arrives, in
// order, and nobody is closed for it. The masters hold the sender back (docs/protocol.md §4)
// instead of dropping what they accepted or closing the receiver as a slow consumer.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "galaxies/error.hpp"
#include "support/cluster.hpp"
#include "support/eventually.hpp"

namespace galaxies::test {
namespace {

// Small queues (four frames), so that the flood fills them many times over.
constexpr std::size_t queue_bound = 256 * 1024;
constexpr std::size_t message_size = 64 * 1024;
constexpr std::size_t message_count = 400;  // 25 MiB: more than the kernel buffers on the way too
constexpr auto join_deadline = 20s;

std::uint64_t counter(const nlohmann::json& status, const char* name) {
  return status.at("status").at("counters").at(name).get<std::uint64_t>();
}

TEST(flow, a_fast_sender_is_held_back_and_every_accepted_message_arrives) {
  cluster c;
  std::vector<host_process*> hosts;
  for (int i = 0; i < 2; ++i) {
    host_options o = with_workers(0);
    o.extra_args = {"--limit", "max_queue_bytes=" + std::to_string(queue_bound)};
    hosts.push_back(&c.add_host(o));
  }
  for (auto* h : hosts)
    ASSERT_TRUE(eventually(join_deadline, [&] { return !h->address().empty(); })) << h->log();
  test_node a(hosts[0]->unix_path(), c.name());
  test_node b(hosts[1]->unix_path(), c.name());
  ASSERT_TRUE(a.wait_ready());
  ASSERT_TRUE(b.wait_ready());

  std::mutex mutex;
  std::vector<std::string> arrived;  // sequence numbers, in arrival order
  b.run([&](node& n) {
    n.on("seq", [&](const message& m, responder) {
      // A receiver slower than its sender: its handler takes a while.
      std::this_thread::sleep_for(5ms);
      const std::lock_guard lock(mutex);
      arrived.emplace_back(reinterpret_cast<const char*>(m.payload.data()),
                           std::min<std::size_t>(m.payload.size(), 8));
    });
  });
  ASSERT_TRUE(eventually(join_deadline, [&] {
    for (const auto& info : a.nodes())
      if (info.id == b.id()) return true;
    return false;
  })) << "the hosts never linked";

  // Payload: an 8-digit sequence number, then filler. The sender sends from its own thread as
  // fast as send() accepts (no round trip between messages), then backs off 1 ms when refused.
  std::size_t accepted = 0;
  std::size_t refused = 0;
  std::error_code unexpected;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (accepted < message_count && !unexpected && std::chrono::steady_clock::now() < deadline) {
    a.run([&](node& n) {
      std::string payload(message_size, 'f');
      for (; accepted < message_count; ++accepted) {
        std::snprintf(payload.data(), 9, "%08zu", accepted);
        payload[8] = 'f';  // snprintf's terminator
        const auto ec = n.send(b.id(), "seq", as_bytes(payload));
        if (ec == make_error_code(errc::overloaded)) {
          ++refused;  // the sender's channel is full: it backs off, as a sender must
          return;
        }
        if (ec) {
          unexpected = ec;
          return;
        }
      }
    });
    if (accepted < message_count) std::this_thread::sleep_for(1ms);
  }
  ASSERT_FALSE(unexpected) << unexpected.message();
  ASSERT_EQ(accepted, message_count) << "the sender was refused for a whole minute";

  // Until everything arrived, or it is clear that it never will (a node lost its master or saw
  // the other leave).
  ASSERT_TRUE(eventually(60s, [&] {
    const std::lock_guard lock(mutex);
    return arrived.size() >= message_count || a.disconnected() || b.disconnected() ||
           !a.left().empty() || !b.left().empty();
  }));
  EXPECT_FALSE(a.disconnected());
  EXPECT_FALSE(b.disconnected()) << "the receiver was closed";
  {
    const std::lock_guard lock(mutex);
    ASSERT_EQ(arrived.size(), message_count);
    for (std::size_t i = 0; i < message_count; ++i) {
      char seq[9];
      std::snprintf(seq, sizeof seq, "%08zu", i);
      ASSERT_EQ(arrived[i], std::string(seq, 8)) << "out of order or duplicated at " << i;
    }
  }
  EXPECT_TRUE(a.left().empty()) << "a saw " << a.left().front() << " leave";
  EXPECT_TRUE(b.left().empty()) << "b saw " << b.left().front() << " leave";

  std::uint64_t held_back = 0;
  for (auto* h : hosts) {
    const auto status = h->status(5s);
    ASSERT_FALSE(status.is_null()) << h->name() << " did not answer its status";
    EXPECT_EQ(counter(status, "dropped"), 0u) << h->name();
    EXPECT_EQ(counter(status, "slow_consumers"), 0u) << h->name();
    held_back += counter(status, "held_back");
  }
  EXPECT_GT(held_back, 0u) << "no master ever held the sender back: the test proved nothing";
  RecordProperty("refused_sends", static_cast<int>(refused));
}

}  // namespace
}  // namespace galaxies::test
