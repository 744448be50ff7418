// Messaging across real hosts: FIFO and at-most-once per (sender, receiver) pair over 100k
// messages, request/reply through every completion style, the typed errors, and broadcast fan-out.
// Nodes attach from this process (support/cluster.hpp); the workers run the CLI's built-in service.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/endian.hpp"
#include "base/limits.hpp"
#include "support/cluster.hpp"
#include "support/eventually.hpp"
#include "wire/message.hpp"

namespace galaxies::test {
namespace {

using steady = std::chrono::steady_clock;

// Generous: two cores shared with other builds and tests.
constexpr auto join_deadline = 20s;
constexpr auto stream_deadline = 60s;

std::chrono::milliseconds since(steady::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
}

node_id parse_node(const std::string& text) {
  auto id = node_id::parse(text);
  EXPECT_TRUE(id.has_value()) << "not a node id: '" << text << "'";
  return id.value_or(node_id{});
}

bool knows(test_node& observer, const node_id& other) {
  for (const auto& info : observer.nodes())
    if (info.id == other) return true;
  return false;
}

// Every node in `nodes` has seen every other one join: messages between them can be routed.
bool all_know_each_other(const std::vector<test_node*>& nodes) {
  for (auto* a : nodes)
    for (auto* b : nodes)
      if (a != b && !knows(*a, b->id())) return false;
  return true;
}

std::string to_string(std::error_code ec) {
  return ec ? ec.message() : std::string("ok");
}

std::string as_string(const bytes& data) {
  return std::string(as_text(data));
}

// ---- FIFO / at-most-once machinery ---------------------------------------------------------

// A message of a stream carries a u64 sequence number. A sender numbers everything it emits in
// one sequence (sends and broadcasts alike), so a receiver knows exactly which numbers it must see
// from that sender, and in which order: `first, first + step, ...`, `count` of them, then a fence.
class order_checker {
 public:
  void expect(const node_id& from, std::uint64_t first, std::uint64_t step, std::uint64_t count) {
    std::lock_guard lock(mutex_);
    streams_[from] = stream{first, step, count};
  }

  // On the receiving node's thread.
  void on_seq(const message& m) {
    std::lock_guard lock(mutex_);
    auto it = streams_.find(m.from);
    if (it == streams_.end()) return error("seq from an unexpected sender " + m.from.to_string());
    stream& s = it->second;
    if (m.payload.size() != sizeof(std::uint64_t))
      return error("seq payload of " + std::to_string(m.payload.size()) + " bytes");
    const auto seq = base::load_le<std::uint64_t>(m.payload.data());
    if (s.fenced) return error("seq " + std::to_string(seq) + " after the fence");
    const std::uint64_t want = s.first + s.received * s.step;
    if (seq != want)
      error("from " + m.from.to_string().substr(0, 8) + ": got seq " + std::to_string(seq) +
            ", expected " + std::to_string(want));
    ++s.received;
  }

  void on_fence(const message& m) {
    std::lock_guard lock(mutex_);
    auto it = streams_.find(m.from);
    if (it == streams_.end()) return error("fence from an unexpected sender");
    if (it->second.fenced) return error("second fence");
    it->second.fenced = true;
  }

  bool complete() const {
    std::lock_guard lock(mutex_);
    for (const auto& [from, s] : streams_)
      if (!s.fenced) return false;
    return true;
  }

  std::string summary() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [from, s] : streams_)
      out += from.to_string().substr(0, 8) + ": " + std::to_string(s.received) + "/" +
             std::to_string(s.count) + (s.fenced ? " fenced; " : " open; ");
    out += std::to_string(errors_) + " error(s)";
    for (const auto& e : samples_) out += "\n  " + e;
    return out;
  }

  std::uint64_t errors() const {
    std::lock_guard lock(mutex_);
    return errors_;
  }

  std::uint64_t received(const node_id& from) const {
    std::lock_guard lock(mutex_);
    auto it = streams_.find(from);
    return it == streams_.end() ? 0 : it->second.received;
  }

 private:
  struct stream {
    std::uint64_t first = 0;
    std::uint64_t step = 1;
    std::uint64_t count = 0;
    std::uint64_t received = 0;
    bool fenced = false;
  };

  void error(std::string what) {
    ++errors_;
    if (samples_.size() < 10) samples_.push_back(std::move(what));
  }

  mutable std::mutex mutex_;
  std::map<node_id, stream> streams_;
  std::uint64_t errors_ = 0;
  std::vector<std::string> samples_;
};

// Shared ownership: the fixture's nodes outlive a test body, and so do their handlers.
std::shared_ptr<order_checker> install_checker(test_node& receiver) {
  auto checker = std::make_shared<order_checker>();
  receiver.run([checker](node& n) {
    n.on("seq", [checker](const message& m, responder) { checker->on_seq(m); });
    n.on("fence", [checker](const message& m, responder) { checker->on_fence(m); });
  });
  return checker;
}

// Emits `total` numbered messages from one node on its own thread: every `broadcast_every`-th
// (if nonzero) is a broadcast, the rest go to `to`. Then one fence to each of `fence_to`.
// `overloaded` is flow control: wait a moment for the queue to drain and retry the same number.
class seq_sender : public std::enable_shared_from_this<seq_sender> {
 public:
  seq_sender(node& n, node_id to, std::uint64_t total, std::uint64_t broadcast_every,
             std::vector<node_id> fence_to)
      : node_(n),
        to_(to),
        total_(total),
        broadcast_every_(broadcast_every),
        fence_to_(std::move(fence_to)),
        retry_(n.get_executor()) {}

  static bool is_broadcast(std::uint64_t seq, std::uint64_t every) {
    return every != 0 && seq % every == every - 1;
  }

  void start() {
    asio::post(node_.get_executor(), [self = shared_from_this()] { self->step(); });
  }

  // Stops before the next batch. The node may be destroyed after this returns: every later step
  // runs on the node's thread after the flag is set, and touches nothing once it sees it.
  void cancel() { cancelled_ = true; }

  bool done() const { return done_.load(); }
  std::string failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
  }
  std::uint64_t backoffs() const { return backoffs_.load(); }

 private:
  // A bounded batch per turn, then yield: the node's writer and reader run between batches.
  static constexpr int batch = 512;

  void step() {
    if (cancelled_) return;
    for (int i = 0; i < batch && next_ < total_; ++i) {
      std::byte payload[sizeof(std::uint64_t)];
      base::store_le(payload, next_);
      const byte_view view(payload, sizeof payload);
      const std::error_code ec = is_broadcast(next_, broadcast_every_)
                                     ? node_.broadcast("seq", view)
                                     : node_.send(to_, "seq", view);
      if (ec == errc::overloaded) return back_off();
      if (ec) return fail("seq " + std::to_string(next_) + ": " + ec.message());
      stalled_ = false;
      ++next_;
    }
    if (next_ < total_) {
      asio::post(node_.get_executor(), [self = shared_from_this()] { self->step(); });
      return;
    }
    // The fences wait for room as the messages did: the last batch may have filled the queue.
    for (; fenced_ < fence_to_.size(); ++fenced_) {
      const std::error_code ec = node_.send(fence_to_[fenced_], "fence", {});
      if (ec == errc::overloaded) return back_off();
      if (ec) return fail("fence: " + ec.message());
      stalled_ = false;
    }
    done_ = true;
  }

  // First yield, so the writer drains what it can; if that did not make room, the socket itself
  // is full: wait a little instead of spinning on two shared cores.
  void back_off() {
    ++backoffs_;
    if (std::exchange(stalled_, true)) {
      retry_.expires_after(500us);
      retry_.async_wait([self = shared_from_this()](std::error_code) { self->step(); });
    } else {
      asio::post(node_.get_executor(), [self = shared_from_this()] { self->step(); });
    }
  }

  void fail(std::string what) {
    {
      std::lock_guard lock(mutex_);
      failure_ = std::move(what);
    }
    done_ = true;
  }

  node& node_;
  node_id to_;
  std::uint64_t total_;
  std::uint64_t broadcast_every_;
  std::vector<node_id> fence_to_;
  asio::steady_timer retry_;
  std::uint64_t next_ = 0;
  std::size_t fenced_ = 0;  // fences sent, once every message is
  bool stalled_ = false;    // the last attempt was refused with overloaded
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> done_{false};
  std::atomic<std::uint64_t> backoffs_{0};
  mutable std::mutex mutex_;
  std::string failure_;
};

// Owns a running sender and cancels it when the test ends, so that a test failing mid-stream never
// leaves a step queued against a node that is about to go.
class running_sender {
 public:
  explicit running_sender(std::shared_ptr<seq_sender> s) : sender_(std::move(s)) {}
  ~running_sender() { sender_->cancel(); }
  running_sender(const running_sender&) = delete;
  running_sender& operator=(const running_sender&) = delete;
  seq_sender* operator->() const { return sender_.get(); }

 private:
  std::shared_ptr<seq_sender> sender_;
};

std::shared_ptr<seq_sender> start_sender(node& n, const node_id& to, std::uint64_t total,
                                         std::uint64_t broadcast_every,
                                         std::vector<node_id> fence_to) {
  auto sender = std::make_shared<seq_sender>(n, to, total, broadcast_every, std::move(fence_to));
  sender->start();
  return sender;
}

std::shared_ptr<seq_sender> start_sender(test_node& from, const node_id& to, std::uint64_t total,
                                         std::uint64_t broadcast_every,
                                         std::vector<node_id> fence_to) {
  std::shared_ptr<seq_sender> sender;
  from.run(
      [&](node& n) { sender = start_sender(n, to, total, broadcast_every, std::move(fence_to)); });
  return sender;
}

// ---- fixture -------------------------------------------------------------------------------

// Two hosts with one worker each, and one test node attached to each host.
class messaging : public ::testing::Test {
 protected:
  void SetUp() override {
    host_a_ = &cluster_.add_host(with_workers(1));
    host_b_ = &cluster_.add_host(with_workers(1));
    const auto workers_a = host_a_->wait_started(1);
    const auto workers_b = host_b_->wait_started(1);
    ASSERT_EQ(workers_a.size(), 1u);
    ASSERT_EQ(workers_b.size(), 1u);
    worker_a_ = parse_node(workers_a[0]);
    worker_b_ = parse_node(workers_b[0]);

    a_ = std::make_unique<test_node>(host_a_->unix_path(), cluster_.name());
    b_ = std::make_unique<test_node>(host_b_->unix_path(), cluster_.name());
    ASSERT_TRUE(a_->wait_ready());
    ASSERT_TRUE(b_->wait_ready());
    ASSERT_TRUE(eventually(join_deadline, [&] {
      return all_know_each_other({a_.get(), b_.get()}) && knows(*a_, worker_b_) &&
             knows(*b_, worker_a_);
    })) << "the two hosts never linked";
  }

  cluster cluster_;
  host_process* host_a_ = nullptr;
  host_process* host_b_ = nullptr;
  node_id worker_a_;
  node_id worker_b_;
  std::unique_ptr<test_node> a_;
  std::unique_ptr<test_node> b_;
};

// ---- FIFO and at-most-once -----------------------------------------------------------------

constexpr std::uint64_t stream_length = 100'000;
constexpr std::uint64_t broadcast_every = 64;

TEST_F(messaging, fifo_exactly_once_both_directions_with_broadcasts_100k) {
  // A third node, on host B, receives only a's broadcasts: broadcast order holds for it too.
  test_node c(host_b_->unix_path(), cluster_.name());
  ASSERT_TRUE(c.wait_ready());
  ASSERT_TRUE(eventually(join_deadline, [&] {
    return all_know_each_other({a_.get(), b_.get(), &c});
  }));

  const node_id a = a_->id(), b = b_->id();
  auto at_a = install_checker(*a_);
  auto at_b = install_checker(*b_);
  auto at_c = install_checker(c);
  at_b->expect(a, 0, 1, stream_length);  // a's sends and broadcasts, one sequence
  at_a->expect(b, 0, 1, stream_length);  // b sends only
  at_c->expect(a, broadcast_every - 1, broadcast_every, stream_length / broadcast_every);

  const auto forwarded_by_a = [&] {
    const auto s = host_a_->status();
    return s.is_null() ? std::uint64_t{0}
                       : s["status"]["counters"]["forwarded"].get<std::uint64_t>();
  };
  const std::uint64_t forwarded_before = forwarded_by_a();
  const auto start = steady::now();
  running_sender from_a(start_sender(*a_, b, stream_length, broadcast_every, {b, c.id()}));
  running_sender from_b(start_sender(*b_, a, stream_length, 0, {a}));
  const bool finished = eventually(
      stream_deadline, [&] { return at_a->complete() && at_b->complete() && at_c->complete(); },
      10ms);
  const auto took = since(start);

  EXPECT_TRUE(finished) << "after " << took.count() << " ms\n  at a: " << at_a->summary()
                        << "\n  at b: " << at_b->summary() << "\n  at c: " << at_c->summary();
  EXPECT_TRUE(from_a->done() && from_a->failure().empty()) << from_a->failure();
  EXPECT_TRUE(from_b->done() && from_b->failure().empty()) << from_b->failure();
  EXPECT_EQ(at_a->errors(), 0u) << at_a->summary();
  EXPECT_EQ(at_b->errors(), 0u) << at_b->summary();
  EXPECT_EQ(at_c->errors(), 0u) << at_c->summary();
  EXPECT_EQ(at_b->received(a), stream_length);
  EXPECT_EQ(at_a->received(b), stream_length);
  EXPECT_EQ(at_c->received(a), stream_length / broadcast_every);
  // The fence follows everything else, so nothing is still in flight: a duplicate would have
  // arrived before it and counted as an order error above.
  EXPECT_TRUE(a_->left().empty());
  EXPECT_TRUE(b_->left().empty());
  // Host A's master carried both streams, 2 x 100 000 messages, sent 512 per turn: in batches
  // (protocol.md §4.2), far fewer frames than messages.
  const std::uint64_t forwarded = forwarded_by_a() - forwarded_before;
  EXPECT_GT(forwarded, 0u);
  EXPECT_LT(forwarded, stream_length) << "the senders did not batch";
  std::printf("[   info   ] host A forwarded %llu frames\n",
              static_cast<unsigned long long>(forwarded));
  std::printf(
      "[   info   ] 2 x %llu messages (+%llu broadcasts among them) in %lld ms; backoffs "
      "a=%llu b=%llu\n",
      static_cast<unsigned long long>(stream_length),
      static_cast<unsigned long long>(stream_length / broadcast_every),
      static_cast<long long>(took.count()), static_cast<unsigned long long>(from_a->backoffs()),
      static_cast<unsigned long long>(from_b->backoffs()));
}

// ---- request / reply -----------------------------------------------------------------------

// Outcomes of many concurrent requests, recorded from whichever thread completes them.
struct tally {
  std::atomic<int> ok{0};
  std::atomic<int> mismatched{0};
  std::atomic<int> failed{0};
  std::mutex mutex;
  std::string first_problem;

  void record(std::error_code ec, const bytes& reply, const std::string& expected) {
    if (!ec && as_text(reply) == expected) {
      ++ok;
      return;
    }
    (ec ? failed : mismatched)++;
    std::lock_guard lock(mutex);
    if (first_problem.empty())
      first_problem = "request '" + expected + "': " + to_string(ec) + ", reply '" +
                      as_string(reply).substr(0, 64) + "'";
  }
  int total() const { return ok + mismatched + failed; }
};

asio::awaitable<void> echo_sequence(node& n, node_id to, int index, int rounds,
                                    std::shared_ptr<tally> t) {
  for (int k = 0; k < rounds; ++k) {
    const std::string payload = "co-" + std::to_string(index) + "-" + std::to_string(k);
    auto [ec, reply] = co_await n.request(to, "echo", as_bytes(payload), 10s,
                                          asio::experimental::as_tuple(asio::use_awaitable));
    t->record(ec, reply, payload);
    // A failure already fails the test; stopping here also keeps a failed test from touching
    // the node after it is gone.
    if (ec) co_return;
  }
}

TEST_F(messaging, request_reply_with_co_await) {
  constexpr int coroutines = 200;
  constexpr int rounds = 5;
  auto t = std::make_shared<tally>();
  const node_id to = worker_b_;
  a_->run([&](node& n) {
    for (int i = 0; i < coroutines; ++i)
      asio::co_spawn(n.get_executor(), echo_sequence(n, to, i, rounds, t), asio::detached);
  });
  ASSERT_TRUE(eventually(30s, [&] { return t->total() == coroutines * rounds; }))
      << t->total() << " of " << coroutines * rounds << " completed";
  EXPECT_EQ(t->ok.load(), coroutines * rounds) << t->first_problem;
}

TEST_F(messaging, request_reply_with_callback) {
  constexpr int requests = 2000;
  auto t = std::make_shared<tally>();
  const node_id to = worker_b_;
  a_->run([&](node& n) {
    for (int i = 0; i < requests; ++i) {
      std::string payload =
          "cb-" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 97), 'x');
      n.request(to, "echo", as_bytes(payload), 10s,
                [t, payload](std::error_code ec, bytes reply) { t->record(ec, reply, payload); });
    }
  });
  ASSERT_TRUE(eventually(30s, [&] { return t->total() == requests; }))
      << t->total() << " of " << requests << " completed";
  EXPECT_EQ(t->ok.load(), requests) << t->first_problem;
}

TEST_F(messaging, request_reply_with_future) {
  constexpr int requests = 200;
  std::vector<std::pair<std::string, std::future<bytes>>> futures;
  std::future<bytes> unknown_command;
  const node_id to = worker_b_;
  // The futures are created on the node's thread and waited for here: the node's own thread must
  // keep running to complete them.
  a_->run([&](node& n) {
    for (int i = 0; i < requests; ++i) {
      std::string payload = "future-" + std::to_string(i);
      auto f = n.request(to, "echo", as_bytes(payload), 10s, asio::use_future);
      futures.emplace_back(std::move(payload), std::move(f));
    }
    unknown_command = n.request(to, "no-such-command", as_bytes("x"), 10s, asio::use_future);
  });
  for (auto& [payload, f] : futures) {
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready) << payload;
    try {
      EXPECT_EQ(as_string(f.get()), payload);
    } catch (const std::system_error& e) {
      ADD_FAILURE() << payload << ": " << e.what();
    }
  }
  ASSERT_EQ(unknown_command.wait_for(30s), std::future_status::ready);
  try {
    unknown_command.get();
    ADD_FAILURE() << "a request for an unknown command succeeded";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), errc::no_handler) << e.what();
  }
}

// Both directions and both kinds of target at once: worker and attached node, local and remote.
TEST_F(messaging, concurrent_requests_match_their_replies_across_targets) {
  b_->run([](node& n) { n.on("echo", [](const message& m, responder r) { r.reply(m.payload); }); });
  a_->run([](node& n) { n.on("echo", [](const message& m, responder r) { r.reply(m.payload); }); });
  auto t = std::make_shared<tally>();
  constexpr int per_target = 500;
  auto fire = [&](test_node& from, std::vector<node_id> targets, const char* tag) {
    from.run([&, targets, tag](node& n) {
      for (int i = 0; i < per_target; ++i)
        for (std::size_t k = 0; k < targets.size(); ++k) {
          std::string payload =
              std::string(tag) + "-" + std::to_string(k) + "-" + std::to_string(i);
          n.request(
              targets[k], "echo", as_bytes(payload), 10s,
              [t, payload](std::error_code ec, bytes reply) { t->record(ec, reply, payload); });
        }
    });
  };
  fire(*a_, {worker_a_, worker_b_, b_->id()}, "a");
  fire(*b_, {worker_a_, worker_b_, a_->id()}, "b");
  ASSERT_TRUE(eventually(30s, [&] { return t->total() == 6 * per_target; }))
      << t->total() << " of " << 6 * per_target << " completed";
  EXPECT_EQ(t->ok.load(), 6 * per_target) << t->first_problem;
}

// ---- typed errors --------------------------------------------------------------------------

TEST_F(messaging, timeout_completes_on_time_and_the_late_reply_is_counted) {
  ASSERT_EQ(a_->counters().late_replies, 0u);
  const auto start = steady::now();
  const auto [ec, reply] = a_->request(worker_b_, "delay", "3000", 200ms);
  const auto took = since(start);
  EXPECT_EQ(ec, errc::timeout) << to_string(ec);
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 1500ms) << "a 200 ms timeout took " << took.count() << " ms";
  // The worker still answers after 3 s; that answer finds no request and is dropped and counted:
  // by the first master whose record of the request has expired (status: unmatched_replies), or
  // by the requester itself (late_replies) if it gets that far.
  const auto late = [&] {
    std::uint64_t n = a_->counters().late_replies;
    for (auto* h : {host_a_, host_b_}) {
      const auto s = h->status();
      if (!s.is_null()) n += s["status"]["counters"]["unmatched_replies"].get<std::uint64_t>();
    }
    return n;
  };
  EXPECT_TRUE(eventually(10s, [&] { return late() == 1; })) << "late replies: " << late();
  // The connection is unharmed by the late reply.
  const auto [ec2, reply2] = a_->request(worker_b_, "echo", "after-timeout");
  EXPECT_FALSE(ec2) << to_string(ec2);
  EXPECT_EQ(as_string(reply2), "after-timeout");
  EXPECT_EQ(late(), 1u);
}

TEST_F(messaging, no_such_node_is_immediate) {
  const node_id nobody = node_id::random();
  const auto start = steady::now();
  const auto [ec, reply] = a_->request(nobody, "echo", "x", 10s);
  EXPECT_EQ(ec, errc::no_such_node) << to_string(ec);
  EXPECT_LT(since(start), 1000ms);
  EXPECT_EQ(a_->send(nobody, "echo", "x"), errc::no_such_node);
}

TEST_F(messaging, no_handler_is_answered_by_the_target) {
  const auto start = steady::now();
  const auto [ec, reply] = a_->request(worker_b_, "no-such-command", "x", 10s);
  EXPECT_EQ(ec, errc::no_handler) << to_string(ec);
  EXPECT_LT(since(start), 5000ms);
  // An attached node answers the same way.
  const auto [ec2, reply2] = a_->request(b_->id(), "no-such-command", "x", 10s);
  EXPECT_EQ(ec2, errc::no_handler) << to_string(ec2);
}

TEST_F(messaging, too_large_fails_locally_and_the_connection_still_works) {
  const std::size_t max = limits::default_max_frame_size;
  const std::string huge(max, 'z');
  const auto start = steady::now();
  const auto [ec, reply] = a_->request(worker_b_, "echo", huge, 10s);
  EXPECT_EQ(ec, errc::too_large) << to_string(ec);
  EXPECT_LT(since(start), 1000ms);
  EXPECT_EQ(a_->send(worker_b_, "echo", huge), errc::too_large);
  std::error_code broadcast_ec;
  a_->run([&](node& n) { broadcast_ec = n.broadcast("echo", as_bytes(huge)); });
  EXPECT_EQ(broadcast_ec, errc::too_large);
  // A command over max_command_size is too large as well, however small the frame.
  const std::string long_command(limits::max_command_size + 1, 'c');
  const auto [ec_cmd, reply_cmd] = a_->request(worker_b_, long_command, "x", 10s);
  EXPECT_EQ(ec_cmd, errc::too_large) << to_string(ec_cmd);

  const auto [ec2, reply2] = a_->request(worker_b_, "echo", "still-alive", 10s);
  EXPECT_FALSE(ec2) << to_string(ec2);
  EXPECT_EQ(as_string(reply2), "still-alive");

  // The largest frame that fits crosses both masters and comes back whole.
  const std::string fits(max - wire::message_frame_size(4, 0), 'f');
  const auto [ec3, reply3] = a_->request(worker_b_, "echo", fits, 30s);
  EXPECT_FALSE(ec3) << to_string(ec3);
  EXPECT_EQ(reply3.size(), fits.size());
  EXPECT_TRUE(as_text(reply3) == fits);
  EXPECT_TRUE(a_->left().empty());
}

TEST_F(messaging, request_to_a_node_that_leaves_fails_with_node_left) {
  auto x = std::make_unique<test_node>(host_b_->unix_path(), cluster_.name());
  ASSERT_TRUE(x->wait_ready());
  const node_id x_id = x->id();
  ASSERT_TRUE(eventually(join_deadline, [&] { return knows(*a_, x_id); }));

  // Held responders outlive x's node, so x can never answer: only its leaving ends the request.
  auto held = std::make_shared<std::vector<responder>>();
  auto arrived = std::make_shared<std::atomic<bool>>(false);
  x->run([held, arrived](node& n) {
    n.on("hold", [held, arrived](const message&, responder r) {
      held->push_back(std::move(r));
      *arrived = true;
    });
  });
  auto outcome = std::make_shared<std::promise<std::error_code>>();
  auto result = outcome->get_future();
  a_->run([&](node& n) {
    n.request(x_id, "hold", as_bytes("x"), 30s,
              [outcome](std::error_code ec, bytes) { outcome->set_value(ec); });
  });
  ASSERT_TRUE(eventually(10s, [&] { return arrived->load(); }));

  const auto start = steady::now();
  x.reset();
  ASSERT_EQ(result.wait_for(10s), std::future_status::ready) << "the request outlived its target";
  EXPECT_EQ(result.get(), errc::node_left);
  EXPECT_LT(since(start), 5000ms) << "node_left must come when the node leaves, not at the timeout";

  // Once it is known gone, a new request is refused at once.
  ASSERT_TRUE(eventually(10s, [&] { return !knows(*a_, x_id); }));
  const auto [ec, reply] = a_->request(x_id, "hold", "x", 10s);
  EXPECT_EQ(ec, errc::no_such_node) << to_string(ec);
  // Destroying a node is leaving on purpose: it says goodbye first, and leaves once.
  const std::vector<std::pair<std::string, leave_reason>> expected{
      {x_id.to_string(), leave_reason::graceful}};
  EXPECT_EQ(a_->left_reasons(), expected);
}

// ---- counters ------------------------------------------------------------------------------

peer_traffic traffic_with(test_node& observer, const node_id& other) {
  for (const auto& p : observer.peer_counters())
    if (p.node == other) return p;
  return peer_traffic{};
}

bool has_peer_entry(test_node& observer, const node_id& other) {
  for (const auto& p : observer.peer_counters())
    if (p.node == other) return true;
  return false;
}

TEST_F(messaging, counters_follow_replies_timeouts_and_leaves) {
  const auto before = a_->counters();
  const auto before_b = traffic_with(*a_, worker_b_);
  constexpr std::uint64_t n = 20;
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto [ec, reply] = a_->request(worker_b_, "echo", "ping!!");
    ASSERT_FALSE(ec) << to_string(ec);
  }
  auto now = a_->counters();
  EXPECT_EQ(now.request_latency.count - before.request_latency.count, n);
  EXPECT_GT(now.request_latency.sum, before.request_latency.sum);
  EXPECT_GT(now.request_latency.quantile(0.5), 0.0);
  EXPECT_EQ(now.failed_requests.total(), before.failed_requests.total());
  const auto b = traffic_with(*a_, worker_b_);
  EXPECT_EQ(b.requests_sent - before_b.requests_sent, n);
  EXPECT_EQ(b.messages_sent - before_b.messages_sent, n);
  EXPECT_EQ(b.bytes_sent - before_b.bytes_sent, 6 * n);
  EXPECT_EQ(b.replies_received - before_b.replies_received, n);
  EXPECT_EQ(b.messages_received - before_b.messages_received, n);
  EXPECT_EQ(b.bytes_received - before_b.bytes_received, 6 * n);

  // A timeout is a failure, not a round trip ("hold" never answers).
  const auto [ec, reply] = a_->request(worker_b_, "hold", "x", 200ms);
  EXPECT_EQ(ec, errc::timeout) << to_string(ec);
  const auto after_timeout = a_->counters();
  EXPECT_EQ(after_timeout.failed_requests.timeout, now.failed_requests.timeout + 1);
  EXPECT_EQ(after_timeout.request_latency.count, now.request_latency.count);

  // A node that leaves takes its entry with it.
  auto x = std::make_unique<test_node>(host_b_->unix_path(), cluster_.name());
  ASSERT_TRUE(x->wait_ready());
  const node_id x_id = x->id();
  ASSERT_TRUE(eventually(join_deadline, [&] { return knows(*a_, x_id); }));
  ASSERT_FALSE(a_->send(x_id, "anything", "hello"));
  EXPECT_EQ(traffic_with(*a_, x_id).bytes_sent, 5u);
  x.reset();
  ASSERT_TRUE(eventually(10s, [&] { return !knows(*a_, x_id); }));
  EXPECT_FALSE(has_peer_entry(*a_, x_id));
  EXPECT_TRUE(has_peer_entry(*a_, worker_b_));
}

// ---- broadcast -----------------------------------------------------------------------------

// Counts each (sender, payload) it receives under "bc", and the fences that close a round.
class broadcast_counter {
 public:
  void install(test_node& t) {
    t.run([this](node& n) {
      n.on("bc", [this](const message& m, responder) {
        std::lock_guard lock(mutex_);
        ++seen_[{m.from, std::string(as_text(m.payload))}];
      });
      n.on("fence", [this](const message& m, responder) {
        std::lock_guard lock(mutex_);
        ++fences_[m.from];
      });
    });
  }
  int count(const node_id& from, const std::string& payload) const {
    std::lock_guard lock(mutex_);
    auto it = seen_.find({from, payload});
    return it == seen_.end() ? 0 : it->second;
  }
  int total() const {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const auto& [key, k] : seen_) n += k;
    return n;
  }
  int fences(const node_id& from) const {
    std::lock_guard lock(mutex_);
    auto it = fences_.find(from);
    return it == fences_.end() ? 0 : it->second;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<node_id, std::string>, int> seen_;
  std::map<node_id, int> fences_;
};

TEST(broadcast, reaches_every_other_node_exactly_once_and_not_the_sender) {
  cluster c;
  auto& a = c.add_host(with_workers(1));
  auto& b = c.add_host(with_workers(1));
  auto& h3 = c.add_host(with_workers(1));
  for (auto* h : {&a, &b, &h3}) ASSERT_EQ(h->wait_started(1).size(), 1u);

  // Declared before the nodes whose handlers use them, so that they outlive those nodes.
  std::vector<std::unique_ptr<broadcast_counter>> counters;

  // Two on the sender's host (local fan-out) and one on each other host (one copy per link).
  test_node a1(a.unix_path(), c.name()), a2(a.unix_path(), c.name());
  test_node b1(b.unix_path(), c.name()), c1(h3.unix_path(), c.name());
  std::vector<test_node*> all{&a1, &a2, &b1, &c1};
  for (auto* t : all) ASSERT_TRUE(t->wait_ready());
  ASSERT_TRUE(eventually(join_deadline, [&] { return all_know_each_other(all); }))
      << "the three hosts never formed one cluster";

  for (auto* t : all) {
    counters.push_back(std::make_unique<broadcast_counter>());
    counters.back()->install(*t);
  }
  const node_id sender = a1.id();
  const std::vector<std::string> payloads{"bc-1", "bc-2", "bc-3"};
  std::error_code first_error;
  a1.run([&](node& n) {
    for (const auto& p : payloads)
      if (auto ec = n.broadcast("bc", as_bytes(p)); ec && !first_error) first_error = ec;
    // Per-pair FIFO: once a receiver has the fence, every copy sent before it has arrived. The
    // sender fences itself too, so a copy looped back to it would show before that fence.
    for (auto* t : all)
      if (auto ec = n.send(t->id(), "fence", {}); ec && !first_error) first_error = ec;
  });
  ASSERT_FALSE(first_error) << first_error.message();
  ASSERT_TRUE(eventually(10s, [&] {
    for (auto& k : counters)
      if (k->fences(sender) != 1) return false;
    return true;
  })) << "a fence never arrived";

  EXPECT_EQ(counters[0]->total(), 0) << "the sender received its own broadcast";
  for (std::size_t i = 1; i < all.size(); ++i)
    for (const auto& p : payloads)
      EXPECT_EQ(counters[i]->count(sender, p), 1) << "receiver " << i << ", payload " << p;
  for (std::size_t i = 1; i < all.size(); ++i)
    EXPECT_EQ(counters[i]->total(), static_cast<int>(payloads.size())) << "receiver " << i;
}

// ---- flow control --------------------------------------------------------------------------

// A node attached with a small outbound queue, on its own thread: send() is refused with
// overloaded long before 100k messages are written, and backing off must lose or reorder nothing.
class small_queue_node {
 public:
  small_queue_node(const std::string& unix_path, const std::string& cluster,
                   std::size_t max_queue_bytes)
      : work_(asio::make_work_guard(io_)) {
    node::attach_options opts;
    opts.unix_path = unix_path;
    opts.cluster = cluster;
    opts.max_queue_bytes = max_queue_bytes;
    node_ = node::attach(io_, opts);
    node_->on_ready([this] { ready_ = true; });
    thread_ = std::thread([this] {
      io_.run();
      finished_.set_value();
    });
  }

  ~small_queue_node() {
    // The node goes on its own thread; the io_context then runs out of work once the connection
    // has closed. Bounded, so that a connection that never closes fails instead of hanging.
    asio::post(io_, [this] { node_.reset(); });
    work_.reset();
    if (finished_.get_future().wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "the attached node's io_context did not run out of work after it left";
      io_.stop();
    }
    thread_.join();
  }

  bool ready() const { return ready_.load(); }

  void run(const std::function<void(node&)>& fn) {
    std::promise<void> done;
    asio::post(io_, [&] {
      fn(*node_);
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unique_ptr<node> node_;
  std::promise<void> finished_;
  std::thread thread_;
  std::atomic<bool> ready_{false};
};

TEST_F(messaging, backing_off_on_overloaded_loses_and_reorders_nothing) {
  // 16 KiB holds about 250 of these frames, fewer than one sender batch: the limit is certain to
  // be hit, however fast the master reads.
  small_queue_node s(host_a_->unix_path(), cluster_.name(), 16 * 1024);
  ASSERT_TRUE(eventually(10s, [&] { return s.ready(); }));
  node_id s_id;
  s.run([&](node& n) { s_id = n.id(); });
  ASSERT_TRUE(eventually(join_deadline, [&] { return knows(*b_, s_id); }));
  bool s_knows_b = false;
  ASSERT_TRUE(eventually(join_deadline, [&] {
    s.run([&](node& n) {
      for (const auto& info : n.nodes())
        if (info.id == b_->id()) s_knows_b = true;
    });
    return s_knows_b;
  }));

  auto at_b = install_checker(*b_);
  at_b->expect(s_id, 0, 1, stream_length);
  std::shared_ptr<seq_sender> started;
  const node_id b = b_->id();
  s.run([&](node& n) { started = start_sender(n, b, stream_length, 0, {b}); });
  running_sender sender(std::move(started));
  const bool finished = eventually(
      stream_deadline, [&] { return at_b->complete(); }, 10ms);
  EXPECT_TRUE(finished) << at_b->summary();
  EXPECT_TRUE(sender->done() && sender->failure().empty()) << sender->failure();
  EXPECT_EQ(at_b->errors(), 0u) << at_b->summary();
  EXPECT_EQ(at_b->received(s_id), stream_length);
  EXPECT_GT(sender->backoffs(), 0u) << "the small queue never pushed back: the test proves nothing";
}

}  // namespace
}  // namespace galaxies::test
