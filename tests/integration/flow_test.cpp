// Flow control on real hosts (docs/protocol.md §4.1): a receiver slower than its sender, or one
// that stops reading altogether, slows down exactly the senders that feed it. Every message
// send() accepted arrives, in order; nobody is closed or declared gone; the masters never hold a
// connection back nor drop anything, and the other pairs on the same host link go on meanwhile.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "galaxies/error.hpp"
#include "support/cluster.hpp"
#include "support/eventually.hpp"

namespace galaxies::test {
namespace {

constexpr auto join_deadline = 20s;
using steady = std::chrono::steady_clock;

std::uint64_t counter(const nlohmann::json& status, const char* name) {
  return status.at("status").at("counters").at(name).get<std::uint64_t>();
}

// A process's resident memory, from /proc (0 when it cannot be read).
std::size_t resident_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      std::size_t kib = 0;
      in >> kib;
      return kib * 1024;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

// Messages carrying a sequence number (8 digits, then filler), and the receiving end that
// checks they arrive complete and in order.
std::string numbered(std::size_t seq, std::size_t size) {
  char digits[21];  // room for any size_t, so that the compiler sees no truncation
  std::snprintf(digits, sizeof digits, "%08zu", seq % 100'000'000);
  std::string payload(std::max<std::size_t>(size, 8), 'f');
  std::memcpy(payload.data(), digits, 8);
  return payload;
}

class sequence_log {
 public:
  void add(byte_view payload) {
    const std::lock_guard lock(mutex_);
    const std::string seq(as_text(payload).substr(0, 8));
    if (seq != numbered(count_, 8).substr(0, 8)) in_order_ = false;
    ++count_;
  }
  std::size_t count() const {
    const std::lock_guard lock(mutex_);
    return count_;
  }
  bool in_order() const {
    const std::lock_guard lock(mutex_);
    return in_order_;
  }

 private:
  mutable std::mutex mutex_;
  std::size_t count_ = 0;
  bool in_order_ = true;
};

bool knows(test_node& n, const node_id& other) {
  for (const auto& info : n.nodes())
    if (info.id == other) return true;
  return false;
}

// Sends numbered messages from `from` to `to` until `stop` (or `limit` of them), as fast as
// send() accepts them, backing off 1 ms when refused. Returns how many were accepted; an error
// other than overloaded ends it and lands in `failure`.
struct flood_result {
  std::size_t accepted = 0;
  std::size_t refused = 0;
  std::error_code failure;
};
flood_result flood(test_node& from, const node_id& to, std::size_t size,
                   const std::function<bool()>& stop, std::size_t limit = SIZE_MAX) {
  flood_result r;
  while (!stop() && r.accepted < limit && !r.failure) {
    bool refused = false;
    from.run([&](node& n) {
      for (int burst = 0; burst < 256 && r.accepted < limit; ++burst) {
        const auto ec = n.send(to, "seq", as_bytes(numbered(r.accepted, size)));
        if (ec == make_error_code(errc::overloaded)) {
          ++r.refused;
          refused = true;
          return;
        }
        if (ec) {
          r.failure = ec;
          return;
        }
        ++r.accepted;
      }
    });
    if (refused) std::this_thread::sleep_for(1ms);
  }
  return r;
}

void expect_nothing_dropped_or_held(const std::vector<host_process*>& hosts) {
  for (auto* h : hosts) {
    const auto status = h->status(5s);
    ASSERT_FALSE(status.is_null()) << h->name() << " did not answer its status";
    EXPECT_EQ(counter(status, "dropped"), 0u) << h->name();
    EXPECT_EQ(counter(status, "slow_consumers"), 0u) << h->name();
    EXPECT_EQ(counter(status, "held_back"), 0u)
        << h->name() << ": a master had to stop reading; credit should have slowed the sender";
  }
}

std::vector<host_process*> two_hosts(cluster& c) {
  std::vector<host_process*> hosts;
  for (int i = 0; i < 2; ++i) hosts.push_back(&c.add_host(with_workers(0)));
  for (auto* h : hosts)
    EXPECT_TRUE(eventually(join_deadline, [&] { return !h->address().empty(); })) << h->log();
  return hosts;
}

TEST(flow, a_receiver_slower_than_its_sender_slows_it_down_and_gets_everything) {
  constexpr std::size_t message_size = 64 * 1024;
  constexpr std::size_t message_count = 1000;  // 64 MiB: twice the masters' queue bound
  cluster c;
  const auto hosts = two_hosts(c);
  test_node a(hosts[0]->unix_path(), c.name());
  test_node b(hosts[1]->unix_path(), c.name());
  ASSERT_TRUE(a.wait_ready());
  ASSERT_TRUE(b.wait_ready());
  sequence_log arrived;
  b.run([&](node& n) {
    n.on("seq", [&](const message& m, responder) {
      std::this_thread::sleep_for(5ms);  // a receiver slower than its sender
      arrived.add(m.payload);
    });
  });
  ASSERT_TRUE(eventually(join_deadline, [&] { return knows(a, b.id()); }));

  const auto deadline = steady::now() + 60s;
  const auto sent = flood(
      a, b.id(), message_size, [&] { return steady::now() > deadline; }, message_count);
  ASSERT_FALSE(sent.failure) << sent.failure.message();
  ASSERT_EQ(sent.accepted, message_count) << "the sender was refused for a whole minute";
  EXPECT_GT(sent.refused, 0u) << "the sender was never slowed down: the test proved nothing";

  ASSERT_TRUE(eventually(60s, [&] {
    return arrived.count() >= message_count || a.disconnected() || b.disconnected() ||
           !a.left().empty() || !b.left().empty();
  }));
  EXPECT_EQ(arrived.count(), message_count);
  EXPECT_TRUE(arrived.in_order());
  EXPECT_FALSE(b.disconnected()) << "the receiver was closed";
  EXPECT_TRUE(a.left().empty() && b.left().empty()) << "a node was declared gone";
  expect_nothing_dropped_or_held(hosts);
  RecordProperty("refused_sends", static_cast<int>(sent.refused));
}

TEST(flow, without_credit_sends_are_refused_and_async_sends_and_requests_wait_in_order) {
  cluster c;
  const auto hosts = two_hosts(c);
  test_node a(hosts[0]->unix_path(), c.name());
  test_node b(hosts[1]->unix_path(), c.name(), heartbeat_options{0ms, 6});
  test_node other(hosts[1]->unix_path(), c.name());
  for (auto* n : {&a, &b, &other}) ASSERT_TRUE(n->wait_ready());
  sequence_log at_b;
  std::atomic<int> broadcasts_at_other{0};
  b.run([&](node& n) {
    n.on("seq", [&](const message& m, responder) { at_b.add(m.payload); });
    n.on("echo", [](const message& m, responder r) { r.reply(m.payload); });
  });
  other.run(
      [&](node& n) { n.on("all", [&](const message&, responder) { ++broadcasts_at_other; }); });
  const node_id b_id = b.id();
  ASSERT_TRUE(eventually(join_deadline, [&] { return knows(a, b_id) && knows(a, other.id()); }));

  std::promise<void> thaw;
  b.freeze_until(thaw.get_future().share());
  // send() takes what the window holds, then refuses; a broadcast needs room at every node.
  std::size_t accepted = 0;
  std::error_code refused, broadcast_refused;
  a.run([&](node& n) {
    while (!(refused = n.send(b_id, "seq", as_bytes(numbered(accepted, 1024))))) ++accepted;
    // As large as the send refused last, so that what is left of b's window cannot hold it.
    broadcast_refused = n.broadcast("all", as_bytes(std::string(1024, 'x')));
  });
  EXPECT_EQ(refused, errc::overloaded);
  EXPECT_EQ(broadcast_refused, errc::overloaded) << "b has no room: nobody gets the broadcast";
  EXPECT_GT(accepted, 0u);

  // async_send waits for room, behind nothing but the pair's own earlier messages.
  constexpr std::size_t waiting = 20;
  std::mutex mutex;
  std::vector<std::error_code> completions;
  a.run([&](node& n) {
    for (std::size_t i = 0; i < waiting; ++i)
      n.async_send(b_id, "seq", as_bytes(numbered(accepted + i, 1024)), [&](std::error_code ec) {
        const std::lock_guard lock(mutex);
        completions.push_back(ec);
      });
  });
  // A request waits too, and times out while b is stopped; its time is the test's pause.
  const auto [timed_out, nothing] = a.request(b_id, "echo", "late", 300ms);
  EXPECT_EQ(timed_out, errc::timeout);
  {
    const std::lock_guard lock(mutex);
    EXPECT_TRUE(completions.empty()) << "an async_send completed without credit";
  }

  thaw.set_value();
  ASSERT_TRUE(eventually(30s, [&] {
    const std::lock_guard lock(mutex);
    return completions.size() == waiting;
  }));
  for (const auto& ec : completions) EXPECT_FALSE(ec) << ec.message();
  ASSERT_TRUE(eventually(30s, [&] { return at_b.count() >= accepted + waiting; }));
  EXPECT_EQ(at_b.count(), accepted + waiting);
  EXPECT_TRUE(at_b.in_order());
  const auto [ok, reply] = a.request(b_id, "echo", "again", 5s);
  EXPECT_FALSE(ok) << ok.message();
  EXPECT_EQ(as_text(reply), "again");
  EXPECT_EQ(broadcasts_at_other.load(), 0);
  expect_nothing_dropped_or_held(hosts);
}

// Host A runs a flooder and two neighbour senders, host B a receiver that stops reading and the
// two neighbour receivers: one pair exchanges messages, the other requests, all over the one
// link between A and B.
void a_stopped_receiver_holds_back_only_its_sender(std::chrono::seconds flood_for) {
  constexpr std::size_t flood_size = 1024;
  cluster c;
  const auto hosts = two_hosts(c);
  const heartbeat_options none{0ms, 6};
  test_node flooder(hosts[0]->unix_path(), c.name());
  test_node sender(hosts[0]->unix_path(), c.name());
  test_node requester(hosts[0]->unix_path(), c.name());
  test_node stopped(hosts[1]->unix_path(), c.name(), none);
  test_node receiver(hosts[1]->unix_path(), c.name());
  test_node responder_node(hosts[1]->unix_path(), c.name());
  for (auto* n : {&flooder, &sender, &requester, &stopped, &receiver, &responder_node})
    ASSERT_TRUE(n->wait_ready());
  sequence_log flooded, neighbour;
  stopped.run(
      [&](node& n) { n.on("seq", [&](const message& m, responder) { flooded.add(m.payload); }); });
  receiver.run([&](node& n) {
    n.on("seq", [&](const message& m, responder) { neighbour.add(m.payload); });
  });
  responder_node.run(
      [&](node& n) { n.on("echo", [](const message& m, responder r) { r.reply(m.payload); }); });
  ASSERT_TRUE(eventually(join_deadline, [&] {
    return knows(flooder, stopped.id()) && knows(sender, receiver.id()) &&
           knows(requester, responder_node.id());
  }));
  const std::size_t memory_before[2] = {resident_bytes(hosts[0]->pid()),
                                        resident_bytes(hosts[1]->pid())};

  const node_id stopped_id = stopped.id();  // asked before its thread stops answering
  std::promise<void> thaw;
  stopped.freeze_until(thaw.get_future().share());
  std::atomic<bool> stop{false};
  const auto stopping = [&] { return stop.load(); };
  auto flood_done = std::async(std::launch::async,
                               [&] { return flood(flooder, stopped_id, flood_size, stopping); });
  auto neighbour_done =
      std::async(std::launch::async, [&] { return flood(sender, receiver.id(), 64, stopping); });
  auto requests_done = std::async(std::launch::async, [&] {
    std::pair<std::size_t, std::error_code> r{0, {}};
    while (!stop && !r.second) {
      const auto [ec, reply] = requester.request(responder_node.id(), "echo", "ping", 10s);
      if (ec || as_text(reply) != "ping")
        r.second = ec ? ec : make_error_code(errc::handler_failed);
      ++r.first;
    }
    return r;
  });
  std::size_t memory_peak[2] = {0, 0};
  for (const auto until = steady::now() + flood_for; steady::now() < until;) {
    std::this_thread::sleep_for(100ms);  // sampling, not waiting for an event
    for (int i = 0; i < 2; ++i)
      memory_peak[i] = std::max(memory_peak[i], resident_bytes(hosts[i]->pid()));
  }
  stop = true;
  const auto flooded_sent = flood_done.get();
  const auto neighbour_sent = neighbour_done.get();
  const auto [requests, request_error] = requests_done.get();

  EXPECT_FALSE(flooded_sent.failure) << flooded_sent.failure.message();
  EXPECT_GT(flooded_sent.refused, 0u) << "the flooder was never held back";
  EXPECT_FALSE(neighbour_sent.failure) << neighbour_sent.failure.message();
  EXPECT_GT(neighbour_sent.accepted, 0u);
  EXPECT_FALSE(request_error) << "a neighbour's request failed: " << request_error.message();
  EXPECT_GT(requests, 0u);
  ASSERT_TRUE(eventually(30s, [&] { return neighbour.count() >= neighbour_sent.accepted; }));
  EXPECT_EQ(neighbour.count(), neighbour_sent.accepted);
  EXPECT_TRUE(neighbour.in_order());
  EXPECT_EQ(flooded.count(), 0u) << "the stopped receiver handled messages";

  thaw.set_value();
  ASSERT_TRUE(eventually(60s, [&] { return flooded.count() >= flooded_sent.accepted; }))
      << flooded.count() << " of " << flooded_sent.accepted << " arrived";
  EXPECT_EQ(flooded.count(), flooded_sent.accepted);
  EXPECT_TRUE(flooded.in_order());
  for (auto* n : {&flooder, &sender, &requester, &stopped, &receiver, &responder_node}) {
    EXPECT_TRUE(n->left().empty()) << "a node was declared gone";
    EXPECT_FALSE(n->disconnected());
  }
  expect_nothing_dropped_or_held(hosts);
  for (int i = 0; i < 2; ++i)
    EXPECT_LT(memory_peak[i], memory_before[i] + (64u << 20)) << hosts[i]->name();
  ::testing::Test::RecordProperty("flood_accepted", static_cast<int>(flooded_sent.accepted));
  ::testing::Test::RecordProperty("neighbour_accepted", static_cast<int>(neighbour_sent.accepted));
  ::testing::Test::RecordProperty("neighbour_requests", static_cast<int>(requests));
}

TEST(flow, a_stopped_receiver_holds_back_only_its_sender) {
  a_stopped_receiver_holds_back_only_its_sender(5s);
}

// The same for a minute (label slow): long enough for every timer of the masters (heartbeats,
// housekeeping, write stalls, max_hold) to have fired many times over.
TEST(flow_soak, a_stopped_receiver_flooded_for_a_minute_holds_back_only_its_sender) {
  a_stopped_receiver_holds_back_only_its_sender(60s);
}

}  // namespace
}  // namespace galaxies::test
