// basic_link over the in-memory test stream: framing under short reads and writes, batching, the
// read buffer's growth, every close reason exactly once, the bounded queue, heartbeats and
// expiry. A test either connects two links or plays a raw peer by injecting bytes at the link's
// end and taking what the link wrote. Time-based tests wait on the io_context with deadlines;
// nothing sleeps.
#include "transport/link.hpp"

#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/endian.hpp"
#include "link_test_support.hpp"
#include "support/captured_log.hpp"
#include "support/eventually.hpp"
#include "support/test_stream.hpp"
#include "wire/control.hpp"
#include "wire/message.hpp"

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;
using test::make_stream_pair;
using test::stream_options;
using test::test_stream;
using test_link = basic_link<test_stream>;
using clock = std::chrono::steady_clock;
using namespace link_support;

// A lambda names each structured binding it uses in an init-capture ([&, &peer = peer]): clang 14,
// the sanitizer build's compiler, cannot capture a structured binding (C++20's P1091; clang 16).

frame_bytes raw_header(std::uint32_t size, std::uint8_t type) {
  frame_bytes out(wire::header_size);
  base::store_le(out.data(), size);
  base::store_le(out.data() + 4, type);
  return out;
}

frame_bytes text_bytes(std::string_view text) {
  frame_bytes out;
  for (char c : text) out.push_back(static_cast<std::byte>(c));
  return out;
}

class link_test : public ::testing::Test {
 protected:
  // Runs handlers until `done` holds; false if it still does not at the deadline.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    return galaxies::test::run_until(io_, done, limit);
  }

  // Runs every handler that is ready now (and those they post), without waiting for timers.
  void settle() {
    if (io_.stopped()) io_.restart();
    while (io_.poll() > 0) {
    }
  }

  // Runs the io_context for `period` of its own time: for "nothing happens" checks, which need a
  // window in which the thing could have happened.
  void run_for(clock::duration period) {
    asio::steady_timer timer(io_, period);
    bool fired = false;
    timer.async_wait([&](std::error_code) { fired = true; });
    ASSERT_TRUE(run_until([&] { return fired; }, 10s));
  }

  std::pair<test_stream, test_stream> streams(const stream_options& a = {},
                                              const stream_options& b = {}) {
    return make_stream_pair(io_.get_executor(), a, b);
  }

  static std::shared_ptr<test_link> make_link(test_stream stream, link_settings settings = {}) {
    return std::make_shared<test_link>(std::move(stream), std::move(settings));
  }

  // A started link in a process whose last tick ran a second late (950 ms beyond the 50 ms
  // tolerance), beating every 20 ms to a peer whose handshake's lateness record was
  // `peer_lateness` (protocol.md §8.1).
  std::shared_ptr<test_link> late_link(test_stream stream, recording_sink& sink,
                                       std::uint32_t peer_lateness) {
    auto health = std::make_shared<local_health>();
    const auto now = clock::now();
    health->timer_fired(now - 1000ms, now);
    auto link = make_link(std::move(stream), {.health = health});
    link->start(&sink);
    link->enable_heartbeats(20ms, 2000ms, peer_lateness);
    return link;
  }

  // How a link to a peer that never writes ended: its reason (none unless it closed exactly once
  // within 10 s), how long after `judge` began, and its local health's counters.
  struct silent_peer_end {
    std::optional<close_reason> reason;
    clock::duration after{};
    local_health_counters counters;
  };
  // `judge` starts the judging (heartbeats, a deadline) of a link with a fresh local health,
  // its probes set by `probe` first.
  silent_peer_end end_of_silent_peer(const std::function<void(test_link&)>& probe,
                                     const std::function<void(test_link&)>& judge) {
    auto [sa, peer] = streams();
    auto health = std::make_shared<local_health>();
    auto a = make_link(std::move(sa), {.health = health});
    recording_sink sink;
    a->start(&sink);
    probe(*a);
    const auto started = clock::now();
    judge(*a);
    silent_peer_end end;
    const bool closed = run_until([&] { return sink.closed(); }, 10s);
    end.after = clock::now() - started;
    settle();
    if (closed && sink.closes.size() == 1) end.reason = sink.closes[0].first;
    end.counters = health->counters();
    return end;
  }

  // A started link with nothing to do: its reader waits for bytes, its writer for frames.
  std::shared_ptr<test_link> settled_link(test_stream stream, recording_sink& sink) {
    auto link = make_link(std::move(stream));
    link->start(&sink);
    settle();
    return link;
  }

  // A started fair-share link that has sent `first` in lane 3 to a peer that took one byte and
  // then stopped reading: that write stays in flight while the test queues more (release()).
  struct held_link {
    std::shared_ptr<test_link> link;
    test_stream peer;
  };
  held_link held_fair_link(recording_sink& sink, const frame_bytes& first) {
    auto [sa, peer] = streams({.max_unread = 1});
    auto a = make_link(std::move(sa), {.fair_share = true, .name = "a"});
    a->start(&sink);
    EXPECT_TRUE(a->enqueue(first, 3));
    EXPECT_TRUE(run_until([&, &peer = peer] { return peer.unread() == 1; }));
    settle();
    return {std::move(a), std::move(peer)};
  }
  // Lets a held link write on; what its peer received once `done` holds.
  frame_bytes release(held_link& held, const std::function<bool()>& done) {
    held.link->stream().options().max_unread = 0;
    frame_bytes received = held.peer.take_unread();
    EXPECT_TRUE(run_until(done));
    settle();
    const frame_bytes rest = held.peer.take_unread();
    received.insert(received.end(), rest.begin(), rest.end());
    return received;
  }

  asio::io_context io_;
};

// ---- the test stream itself: the link tests are only as good as its semantics ----

struct op_result {
  bool done = false;
  std::error_code error;
  std::size_t n = 0;
};

auto record(op_result& r) {
  return [&r](std::error_code ec, std::size_t n) { r = {true, ec, n}; };
}

TEST_F(link_test, StreamPostsCompletionsCapsTransfersAndReportsEofAfterTheData) {
  auto [a, b] = streams({.max_write = 4}, {.max_read = 3});
  const frame_bytes data = text_bytes("0123456789");
  op_result w, r;
  a.async_write_some(asio::buffer(data), record(w));
  EXPECT_FALSE(w.done) << "never completed from inside the initiating call";
  settle();
  ASSERT_TRUE(w.done);
  EXPECT_EQ(w.n, 4u);

  frame_bytes buffer(100);
  b.async_read_some(asio::buffer(buffer), record(r));
  EXPECT_FALSE(r.done);
  settle();
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.n, 3u);
  EXPECT_EQ(text_bytes("012"), frame_bytes(buffer.begin(), buffer.begin() + 3));

  a.close();
  b.async_read_some(asio::buffer(buffer), record(r = {}));
  settle();
  EXPECT_EQ(r.n, 1u) << "what the peer wrote before closing is still read";
  EXPECT_FALSE(r.error);
  b.async_read_some(asio::buffer(buffer), record(r = {}));
  settle();
  EXPECT_EQ(r.error, asio::error::eof);
  b.async_write_some(asio::buffer(data), record(w = {}));
  settle();
  EXPECT_EQ(w.error, asio::error::broken_pipe);
}

TEST_F(link_test, StreamFailsTheNthOperationAndEveryLaterOne) {
  auto [a, b] = streams({.fail_write_at = 2, .error = asio::error::timed_out});
  const frame_bytes data = text_bytes("x");
  std::vector<std::error_code> errors;
  for (int i = 0; i < 4; ++i) {
    op_result w;
    a.async_write_some(asio::buffer(data), record(w));
    settle();
    errors.push_back(w.error);
  }
  EXPECT_EQ(errors,
            (std::vector<std::error_code>{
                {}, asio::error::timed_out, asio::error::timed_out, asio::error::timed_out}));
  EXPECT_EQ(b.unread(), 1u);
}

TEST_F(link_test, StreamCloseAbortsAPendingRead) {
  auto [a, b] = streams();
  frame_bytes buffer(8);
  op_result r;
  a.async_read_some(asio::buffer(buffer), record(r));
  settle();
  EXPECT_FALSE(r.done) << "no data: the read waits";
  a.close();
  settle();
  EXPECT_EQ(r.error, asio::error::operation_aborted);
}

// ---- framing ----

class link_short_io_test : public link_test, public ::testing::WithParamInterface<std::size_t> {};

TEST_P(link_short_io_test, FramesArriveWholeAndInOrderBothWays) {
  const std::size_t cap = GetParam();
  const stream_options capped{.max_read = cap, .max_write = cap};
  auto [sa, sb] = streams(capped, capped);
  auto a = make_link(std::move(sa));
  auto b = make_link(std::move(sb));
  recording_sink sink_a, sink_b;
  a->start(&sink_a);
  b->start(&sink_b);

  std::vector<frame_bytes> a_to_b, b_to_a;
  for (std::uint32_t i = 0; i < 60; ++i) {
    a_to_b.push_back(message_frame(i, (i * 37) % 300));
    b_to_a.push_back(message_frame(1000 + i, (i * 53) % 200));
    ASSERT_TRUE(a->enqueue(a_to_b.back()));
    ASSERT_TRUE(b->enqueue(b_to_a.back()));
    // Let the I/O advance between some producer calls, so that frames join batches mid-write.
    if (i % 4 == 0) io_.poll_one();
  }
  ASSERT_TRUE(run_until([&] {
    return sink_b.frames.size() >= a_to_b.size() && sink_a.frames.size() >= b_to_a.size();
  })) << "b got "
      << sink_b.frames.size() << ", a got " << sink_a.frames.size();
  settle();

  EXPECT_EQ(sink_b.frames, a_to_b);
  EXPECT_EQ(sink_a.frames, b_to_a);
  EXPECT_FALSE(sink_a.closed());
  EXPECT_FALSE(sink_b.closed());
  const auto& stats = a->stream().stats();
  EXPECT_EQ(stats.bytes_written, concat(a_to_b).size());
  if (cap != 0) {
    // The cap was in force: every byte went through an operation of at most `cap` bytes.
    EXPECT_GE(stats.writes * cap, stats.bytes_written);
    EXPECT_GE(b->stream().stats().reads * cap, b->stream().stats().bytes_read);
  }
}

INSTANTIATE_TEST_SUITE_P(Caps, link_short_io_test, ::testing::Values(1u, 3u, 7u, 0u),
                         [](const auto& info) {
                           return info.param == 0 ? std::string("uncapped")
                                                  : "cap" + std::to_string(info.param);
                         });

TEST_F(link_test, FramesQueuedInOneTurnGoOutInFewWrites) {
  auto [sa, sb] = streams();
  auto a = make_link(std::move(sa));
  auto b = make_link(std::move(sb));
  recording_sink sink_a, sink_b;
  a->start(&sink_a);
  b->start(&sink_b);

  std::vector<frame_bytes> sent;
  for (std::uint32_t i = 0; i < 1000; ++i) {
    sent.push_back(message_frame(i, 16));
    ASSERT_TRUE(a->enqueue(sent.back()));
  }
  ASSERT_TRUE(run_until([&] { return sink_b.frames.size() >= sent.size(); }));
  EXPECT_EQ(sink_b.frames, sent);
  // One gathered write for the whole queue (a little slack for a different chunking), and the
  // reader takes many frames per read.
  EXPECT_LE(a->stream().stats().writes, 3u);
  EXPECT_LE(b->stream().stats().reads, 6u);
}

TEST_F(link_test, FramesQueuedDuringAWriteGoOutTogetherInTheNext) {
  // The peer takes one byte and then stops reading, which holds the first write in flight.
  auto [sa, peer] = streams({.max_unread = 1});
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);

  std::vector<frame_bytes> sent{message_frame(0, 10)};
  ASSERT_TRUE(a->enqueue(sent.back()));
  ASSERT_TRUE(run_until([&, &peer = peer] { return peer.unread() == 1; }));
  settle();
  ASSERT_EQ(a->stream().stats().writes, 2u) << "one byte written, the rest waiting";

  for (std::uint32_t i = 1; i < 100; ++i) {
    sent.push_back(message_frame(i, 10));
    ASSERT_TRUE(a->enqueue(sent.back()));
  }
  a->stream().options().max_unread = 0;
  frame_bytes received = peer.take_unread();
  ASSERT_TRUE(run_until([&] { return a->queued_bytes() == 0; }));
  settle();
  const frame_bytes rest = peer.take_unread();
  received.insert(received.end(), rest.begin(), rest.end());

  EXPECT_EQ(split_frames(received), sent);
  EXPECT_EQ(a->stream().stats().writes, 3u)
      << "one byte, the rest of the first frame, then the 99 queued meanwhile in one write";
}

// ---- writes in the reader's turn (write_batch): what frame handlers queue leaves at once ----

// A link whose handler answers every frame it receives with `answers`, queued from inside on_frame
// (as a master forwards, or a node replies).
void answer_each_frame(recording_sink& sink, test_link& link,
                       const std::vector<frame_bytes>& answers) {
  sink.hook = [&sink, &link, &answers](const wire::frame_view&) {
    for (const auto& answer : answers) EXPECT_TRUE(link.enqueue(answer));
    EXPECT_EQ(sink.closes.size(), 0u);
  };
}

TEST_F(link_test, FramesQueuedInsideOnFrameLeaveInOneWriteBeforeTheReadCompletionReturns) {
  auto [sa, peer] = streams();
  recording_sink sink;
  auto a = settled_link(std::move(sa), sink);
  const std::vector<frame_bytes> answers{message_frame(100, 10), message_frame(101, 20)};
  answer_each_frame(sink, *a, answers);

  a->stream().inject(concat({message_frame(1, 4), message_frame(2, 4)}));
  ASSERT_EQ(io_.run_one(), 1u) << "the read's completion: both frames, and the write";
  EXPECT_EQ(sink.frames.size(), 2u);
  EXPECT_EQ(a->stream().stats().writes, 1u) << "one write for what both frames queued";
  EXPECT_EQ(a->queued_bytes(), 0u);
  EXPECT_EQ(split_frames(peer.take_unread()),
            (std::vector<frame_bytes>{answers[0], answers[1], answers[0], answers[1]}));
  EXPECT_EQ(a->write_stalled_for(clock::now()), clock::duration::zero());
}

// A write in the reader's turn that the stream takes only in part (or not at all: the peer has
// no room) goes on asynchronously, and the peer receives every byte in order.
class link_turn_write_test : public link_test,
                             public ::testing::WithParamInterface<stream_options> {};

TEST_P(link_turn_write_test, WhatTheStreamDoesNotTakeAtOnceFollowsInOrder) {
  auto [sa, sb] = streams({}, GetParam());
  auto a = make_link(std::move(sa), {.name = "a"});
  auto b = make_link(std::move(sb), {.name = "b"});
  recording_sink sink_a, sink_b;
  std::vector<frame_bytes> answers;
  for (std::uint32_t i = 0; i < 3; ++i) answers.push_back(message_frame(1000 + i, 30 + 40 * i));
  answer_each_frame(sink_b, *b, answers);
  a->start(&sink_a);
  b->start(&sink_b);

  const std::uint32_t asked = 50;
  for (std::uint32_t i = 0; i < asked; ++i) ASSERT_TRUE(a->enqueue(message_frame(i, 8)));
  ASSERT_TRUE(run_until([&] { return sink_a.frames.size() >= asked * answers.size(); }));
  settle();
  std::vector<frame_bytes> expected;
  for (std::uint32_t i = 0; i < asked; ++i)
    expected.insert(expected.end(), answers.begin(), answers.end());
  EXPECT_EQ(sink_a.frames, expected);
  EXPECT_TRUE(sink_a.closes.empty());
  EXPECT_TRUE(sink_b.closes.empty());
  EXPECT_EQ(b->queued_bytes(), 0u);
}

INSTANTIATE_TEST_SUITE_P(ShortAndBlockedWrites, link_turn_write_test,
                         ::testing::Values(stream_options{.max_write = 7},
                                           stream_options{.max_write = 101},
                                           stream_options{.max_unread = 50},
                                           stream_options{.max_write = 13, .max_unread = 64}));

TEST_F(link_test, AFailedWriteInTheReadersTurnClosesWithIoErrorOnce) {
  auto [sa, peer] = streams({.fail_write_at = 1});
  recording_sink sink;
  auto a = settled_link(std::move(sa), sink);
  const std::vector<frame_bytes> answers{message_frame(100, 10)};
  answer_each_frame(sink, *a, answers);

  a->stream().inject(concat({message_frame(1, 4), message_frame(2, 4)}));
  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  settle();
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::io_error);
  EXPECT_EQ(sink.closes[0].second, asio::error::connection_reset) << "the stream's own error";
  EXPECT_EQ(a->stream().stats().writes, 1u) << "not tried again";
  EXPECT_EQ(peer.unread(), 0u);
  EXPECT_FALSE(a->enqueue(message_frame(3, 1)));
}

TEST_F(link_test, AQueueDrainedInTheReadersTurnIsReportedOnceOutsideOnFrame) {
  auto [sa, peer] = streams();
  recording_sink sink;
  auto a = settled_link(std::move(sa), sink);
  sink.hook = [&](const wire::frame_view&) {
    ASSERT_TRUE(a->enqueue(message_frame(100, 10)));
    a->notify_drained_below(0);
  };

  a->stream().inject(message_frame(1, 4));
  ASSERT_TRUE(run_until([&] { return sink.drained > 0; }));  // the sink checks: not in on_frame
  settle();
  EXPECT_EQ(sink.drained, 1);
  EXPECT_EQ(split_frames(peer.take_unread()), std::vector<frame_bytes>{message_frame(100, 10)});
}

TEST_F(link_test, CloseAfterFlushFromInsideOnFrameWritesThenCloses) {
  auto [sa, peer] = streams();
  recording_sink sink;
  auto a = settled_link(std::move(sa), sink);
  sink.hook = [&](const wire::frame_view&) {
    ASSERT_TRUE(a->enqueue(message_frame(100, 10)));
    a->close_after_flush(close_reason::refused);
  };

  a->stream().inject(message_frame(1, 4));
  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  settle();
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::refused);
  EXPECT_EQ(split_frames(peer.take_unread()), std::vector<frame_bytes>{message_frame(100, 10)});
}

// ---- lanes: the ordered lane, the sources' lanes in fair turns, the final frames ----

TEST_F(link_test, ASourceLaneDoesNotWaitBehindAnotherSourcesQueue) {
  // The peer holds at most 64 KiB unread, so the link's queue stays queued while the test reads.
  auto [sa, peer] = streams({.max_unread = 64 * 1024});
  auto a = make_link(std::move(sa), {.fair_share = true, .name = "a"});
  recording_sink sink;
  a->start(&sink);

  std::vector<frame_bytes> busy, quiet;
  for (std::uint32_t i = 0; i < 2048; ++i) {  // 2 MiB
    busy.push_back(message_frame(i, 1024 - wire::message_frame_size(3, 0)));
    ASSERT_TRUE(a->enqueue(busy.back(), 1));
  }
  ASSERT_TRUE(run_until([&, &peer = peer] { return peer.unread() > 0; }));
  for (std::uint32_t i = 0; i < 10; ++i) {
    quiet.push_back(message_frame(i, 16));
    ASSERT_TRUE(a->enqueue(quiet.back(), 2));
  }
  frame_bytes received;
  std::size_t busy_before_quiet = 0;
  std::vector<frame_bytes> got_busy, got_quiet;
  while (got_quiet.size() < quiet.size()) {
    ASSERT_TRUE(run_until([&, &peer = peer] { return peer.unread() > 0; }));
    const frame_bytes more = peer.take_unread();
    received.insert(received.end(), more.begin(), more.end());
    // Whole frames only: keep a torn tail for the next round.
    const wire::frame_parser parser;
    std::span<const std::byte> rest(received);
    for (auto r = parser.parse(rest); r.state == wire::parse_result::status::frame;
         r = parser.parse(rest)) {
      frame_bytes f(r.frame.bytes.begin(), r.frame.bytes.end());
      if (f.size() == 1024) {
        got_busy.push_back(std::move(f));
        if (got_quiet.size() < quiet.size()) busy_before_quiet += 1024;
      } else {
        got_quiet.push_back(std::move(f));
      }
      rest = rest.subspan(r.frame.bytes.size());
    }
    received.erase(received.begin(), received.end() - static_cast<std::ptrdiff_t>(rest.size()));
  }
  EXPECT_EQ(got_quiet, quiet);
  // The write in progress when the quiet source queued, and one write with a share for each
  // (without lanes: all 2 MiB first).
  EXPECT_LE(busy_before_quiet, 2 * link_settings{}.max_write_chunk);
  EXPECT_EQ(got_busy, std::vector<frame_bytes>(busy.begin(), busy.begin() + got_busy.size()));
}

TEST_F(link_test, TheOrderedLaneOvertakesTheSourceLanesAndFinalFramesGoLast) {
  recording_sink sink;
  const frame_bytes first = message_frame(0, 10);
  auto held = held_fair_link(sink, first);
  auto& a = held.link;
  std::vector<frame_bytes> lane3;
  for (std::uint32_t i = 1; i <= 50; ++i) {
    lane3.push_back(message_frame(i, 10));
    ASSERT_TRUE(a->enqueue(lane3.back(), 3));
  }
  const frame_bytes ordered = message_frame(1000, 20);
  ASSERT_TRUE(a->enqueue(ordered));
  const frame_bytes lane4 = message_frame(2000, 30);
  ASSERT_TRUE(a->enqueue(lane4, 4));
  wire::append_goodbye(a->final_outbound(), leave_reason::graceful);
  a->close_after_flush(close_reason::shutdown);

  const auto frames = split_frames(release(held, [&] { return sink.closed(); }));
  ASSERT_EQ(frames.size(), 1 + lane3.size() + 3);
  EXPECT_EQ(frames[0], first);
  EXPECT_EQ(frames[1], ordered) << "the ordered lane goes before the sources' queued frames";
  std::vector<frame_bytes> got3;
  for (std::size_t i = 2; i + 1 < frames.size(); ++i)
    if (frames[i] != lane4) got3.push_back(frames[i]);
  EXPECT_EQ(got3, lane3);
  EXPECT_EQ(wire::frame_type(static_cast<std::uint8_t>(frames.back()[4])),
            wire::frame_type::goodbye)
      << "the final frame goes after everything else";
}

TEST_F(link_test, ALaneMergedIntoTheOrderedLaneGoesAheadOfWhatIsEnqueuedThereNext) {
  recording_sink sink;
  const frame_bytes first = message_frame(0, 10);
  auto held = held_fair_link(sink, first);
  auto& a = held.link;
  std::vector<frame_bytes> expected{first};
  for (std::uint32_t i = 1; i <= 20; ++i) {
    expected.push_back(message_frame(i, 10));
    ASSERT_TRUE(a->enqueue(expected.back(), 3));
  }
  const frame_bytes other = message_frame(500, 10);
  ASSERT_TRUE(a->enqueue(other, 5));
  // A departure, then a return: both must follow lane 3's frames, and the other lane's frame
  // (enqueued before) may go after them all.
  a->merge_into_ordered(3);
  for (std::uint32_t i = 1000; i < 1002; ++i) {
    expected.push_back(message_frame(i, 40));
    ASSERT_TRUE(a->enqueue(expected.back()));
  }
  expected.push_back(other);

  EXPECT_EQ(split_frames(release(held, [&] { return a->queued_bytes() == 0; })), expected);
}

TEST_F(link_test, ALargeFrameGoesInSlicesAndArrivesWholeWhileAnotherLanesFramesPass) {
  auto [sa, sb] = streams({.max_write = 100'000}, {.max_read = 50'000});
  auto a = make_link(std::move(sa), {.fair_share = true, .name = "a"});
  auto b = make_link(std::move(sb));
  recording_sink sink_a, sink_b;
  a->start(&sink_a);
  b->start(&sink_b);

  const frame_bytes large = message_frame(0, 2 * 1024 * 1024);
  ASSERT_TRUE(a->enqueue(large, 1));
  // The large frame is on its way (alone, it would go whole in one write without slices).
  ASSERT_TRUE(run_until([&] { return a->stream().stats().bytes_written > 0; }));
  std::vector<frame_bytes> small;
  for (std::uint32_t i = 1; i <= 50; ++i) {
    small.push_back(message_frame(i, 100));
    ASSERT_TRUE(a->enqueue(small.back(), 2));
  }
  const frame_bytes after = message_frame(99, 10);
  ASSERT_TRUE(a->enqueue(after, 1));
  ASSERT_TRUE(run_until([&] { return sink_b.frames.size() == small.size() + 2; }));
  EXPECT_FALSE(sink_b.closed());
  std::vector<frame_bytes> got_small, got_large;
  std::size_t small_before_large = 0;
  for (const auto& f : sink_b.frames) {
    if (f.size() == large.size() || f == after) {
      got_large.push_back(f);
    } else {
      got_small.push_back(f);
      if (got_large.empty()) ++small_before_large;
    }
  }
  EXPECT_EQ(got_small, small);
  EXPECT_EQ(got_large, (std::vector<frame_bytes>{large, after}));
  EXPECT_EQ(small_before_large, small.size()) << "the small frames waited for the large one";
}

TEST_F(link_test, WithoutFairShareEveryLaneIsTheOrderedLane) {
  auto [sa, sb] = streams();
  auto a = make_link(std::move(sa));
  auto b = make_link(std::move(sb));
  recording_sink sink_a, sink_b;
  a->start(&sink_a);
  b->start(&sink_b);
  std::vector<frame_bytes> sent;
  for (std::uint32_t i = 0; i < 30; ++i) {
    sent.push_back(message_frame(i, 100 + i));
    ASSERT_TRUE(a->enqueue(sent.back(), i % 3));
  }
  ASSERT_TRUE(run_until([&] { return sink_b.frames.size() >= sent.size(); }));
  EXPECT_EQ(sink_b.frames, sent);
}

TEST_F(link_test, LargeFrameGrowsTheReadBufferAndArrivesIntact) {
  // A small initial buffer and capped reads make the growth happen over many partial reads.
  auto [sa, sb] = streams({.max_write = 100'000}, {.max_read = 50'000});
  auto a = make_link(std::move(sa));
  auto b = make_link(std::move(sb), {.read_buffer_size = 256, .name = "b"});
  recording_sink sink_a, sink_b;
  a->start(&sink_a);
  b->start(&sink_b);

  const std::vector<frame_bytes> sent{message_frame(1, 100), message_frame(2, 1 << 20),
                                      message_frame(3, 100), message_frame(4, 1 << 20),
                                      message_frame(5, 300)};
  for (const auto& f : sent) ASSERT_TRUE(a->enqueue(f));
  ASSERT_TRUE(run_until([&] { return sink_b.frames.size() >= sent.size(); }));
  ASSERT_EQ(sink_b.frames.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i)
    EXPECT_TRUE(sink_b.frames[i] == sent[i]) << "frame " << i << " differs";

  // The buffer shrank back after the large frames, and small frames still flow.
  const frame_bytes after = message_frame(6, 20);
  ASSERT_TRUE(a->enqueue(after));
  ASSERT_TRUE(run_until([&] { return sink_b.frames.size() > sent.size(); }));
  EXPECT_EQ(sink_b.frames.back(), after);
  EXPECT_FALSE(sink_b.closed());
}

// ---- bad input ----

struct bad_input_case {
  const char* name;
  frame_bytes bytes;
  std::error_code error;
};

// gtest would otherwise print the struct's bytes, padding included.
void PrintTo(const bad_input_case& c, std::ostream* os) {
  *os << c.name;
}

class link_bad_input_test : public link_test,
                            public ::testing::WithParamInterface<bad_input_case> {};

TEST_P(link_bad_input_test, ClosesWithProtocolErrorOnceAndDeliversNothingBad) {
  auto [sa, peer] = streams();
  // A small maximum, so that "oversized" needs only a header (the body is never sent).
  auto a = make_link(std::move(sa), {.max_frame_size = 4096, .name = "a"});
  recording_sink sink;
  a->start(&sink);

  // A good frame first: bad input closes the link but loses nothing that came before it.
  const frame_bytes good = message_frame(1, 5);
  frame_bytes input = good;
  input.insert(input.end(), GetParam().bytes.begin(), GetParam().bytes.end());
  a->stream().inject(input);

  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  run_for(20ms);  // room for a second close or a late frame, if the link were to produce one
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::protocol_error);
  EXPECT_EQ(sink.closes[0].second, GetParam().error) << sink.closes[0].second.message();
  EXPECT_EQ(sink.frames, std::vector<frame_bytes>{good});
  EXPECT_FALSE(a->is_open());
  EXPECT_FALSE(a->stream().is_open()) << "the connection itself is closed";
  EXPECT_FALSE(a->enqueue(good));
}

// `fragment` frames (protocol.md §2.1) carrying `slices` of some bytes, back to back.
frame_bytes fragments(const frame_bytes& bytes, std::vector<std::size_t> cuts) {
  frame_bytes out;
  std::size_t from = 0;
  cuts.push_back(bytes.size());
  for (const std::size_t to : cuts) {
    frame_bytes header = raw_header(static_cast<std::uint32_t>(to - from + 4), 0x25);
    header.resize(wire::header_size);
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), bytes.begin() + static_cast<std::ptrdiff_t>(from),
               bytes.begin() + static_cast<std::ptrdiff_t>(to));
    from = to;
  }
  return out;
}

frame_bytes with_extra_byte(frame_bytes bytes) {
  bytes.push_back(std::byte{0});
  return bytes;
}

INSTANTIATE_TEST_SUITE_P(
    Fragments, link_bad_input_test,
    ::testing::Values(
        bad_input_case{"empty_fragment", fragments({}, {}), wire::decode_error::bad_body},
        bad_input_case{"first_slice_without_a_header", fragments(frame_bytes(3), {}),
                       wire::decode_error::bad_body},
        bad_input_case{"slices_of_an_oversized_frame", fragments(raw_header(4093, 0x20), {}),
                       wire::decode_error::frame_too_large},
        bad_input_case{"slices_of_an_unknown_type", fragments(raw_header(100, 0x7f), {}),
                       wire::decode_error::unknown_type},
        bad_input_case{"a_whole_frame_in_one_slice", fragments(message_frame(2, 5), {}),
                       wire::decode_error::bad_body},
        bad_input_case{"slices_adding_up_to_more_than_the_frame",
                       fragments(with_extra_byte(message_frame(3, 1000)), {500}),
                       wire::decode_error::bad_body},
        bad_input_case{"slices_of_slices", fragments(fragments(frame_bytes(600), {}), {300}),
                       wire::decode_error::bad_body},
        bad_input_case{"slices_of_a_malformed_message",
                       fragments(concat({raw_header(20, 0x20), frame_bytes(16)}), {8}),
                       wire::decode_error::bad_message}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Cases, link_bad_input_test,
    ::testing::Values(
        bad_input_case{"oversized_header", raw_header(4093, 0x20),
                       wire::decode_error::frame_too_large},
        bad_input_case{"huge_size_field", raw_header(0xffffffff, 0x20),
                       wire::decode_error::frame_too_large},
        bad_input_case{"size_below_four", raw_header(3, 0x20), wire::decode_error::frame_too_small},
        bad_input_case{"unknown_type", raw_header(4, 0x7f), wire::decode_error::unknown_type},
        bad_input_case{"short_message", raw_header(4, 0x20), wire::decode_error::bad_message},
        bad_input_case{"heartbeat_with_a_two_byte_body",
                       concat({raw_header(6, 0x04), frame_bytes(2)}), wire::decode_error::bad_body},
        bad_input_case{"http_request", text_bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                       wire::decode_error::frame_too_large}),
    [](const auto& info) { return std::string(info.param.name); });

class link_truncated_test : public link_test, public ::testing::WithParamInterface<std::size_t> {};

TEST_P(link_truncated_test, EofInsideAFrameIsAProtocolError) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);

  const frame_bytes frame = message_frame(7, 40);
  const std::size_t cut = GetParam() < frame.size() ? GetParam() : frame.size() - 1;
  a->stream().inject(std::span(frame).first(cut));
  settle();
  peer.close();

  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  settle();
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::protocol_error);
  EXPECT_EQ(sink.closes[0].second, asio::error::eof);
  EXPECT_TRUE(sink.frames.empty());
}

// Inside the header, right after it, one byte short of the end.
INSTANTIATE_TEST_SUITE_P(Cuts, link_truncated_test, ::testing::Values(1u, 3u, 8u, 9u, 1000u));

TEST_F(link_test, CleanEofAfterTheLastFrameIsEof) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);

  const std::vector<frame_bytes> sent{message_frame(1, 1), message_frame(2, 2),
                                      message_frame(3, 3)};
  a->stream().inject(concat(sent));
  peer.close();  // in the same turn: the frames must still come before the close

  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  settle();
  EXPECT_EQ(sink.frames, sent);
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::eof);
  EXPECT_FALSE(sink.closes[0].second);
}

// ---- i/o errors ----

TEST_F(link_test, NthWriteFailingClosesWithIoError) {
  // One byte per write and the third write fails: the peer is left with a torn frame.
  auto [sa, sb] = streams({.max_write = 1, .fail_write_at = 3});
  auto a = make_link(std::move(sa));
  auto b = make_link(std::move(sb));
  recording_sink sink_a, sink_b;
  a->start(&sink_a);
  b->start(&sink_b);

  ASSERT_TRUE(a->enqueue(message_frame(1, 10)));
  ASSERT_TRUE(run_until([&] { return sink_a.closed() && sink_b.closed(); }));
  settle();
  ASSERT_EQ(sink_a.closes.size(), 1u);
  EXPECT_EQ(sink_a.closes[0].first, close_reason::io_error);
  EXPECT_EQ(sink_a.closes[0].second, asio::error::connection_reset);
  EXPECT_EQ(a->stream().stats().writes, 3u) << "no write after the failed one";
  EXPECT_FALSE(a->enqueue(message_frame(2, 10)));

  EXPECT_EQ(b->stream().stats().bytes_read, 2u);
  ASSERT_EQ(sink_b.closes.size(), 1u);
  EXPECT_EQ(sink_b.closes[0].first, close_reason::protocol_error) << "EOF inside a frame";
  EXPECT_TRUE(sink_b.frames.empty());
}

TEST_F(link_test, NthReadFailingClosesWithIoError) {
  auto [sa, peer] = streams({.fail_read_at = 2});
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);

  const frame_bytes first = message_frame(1, 10);
  a->stream().inject(first);
  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  settle();
  EXPECT_EQ(sink.frames, std::vector<frame_bytes>{first});
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::io_error);
  EXPECT_EQ(sink.closes[0].second, asio::error::connection_reset);
}

// ---- closing ----

TEST_F(link_test, CloseFromInsideOnFrameStopsDelivery) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  sink.hook = [&](const wire::frame_view&) {
    if (sink.frames.size() == 2) a->close(close_reason::local);
  };
  a->start(&sink);

  std::vector<frame_bytes> sent;
  for (std::uint32_t i = 0; i < 5; ++i) sent.push_back(message_frame(i, 4));
  a->stream().inject(concat(sent));  // all five in one read

  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  run_for(10ms);
  EXPECT_EQ(sink.frames, std::vector<frame_bytes>(sent.begin(), sent.begin() + 2));
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::local);
  EXPECT_FALSE(sink.closes[0].second);
}

TEST_F(link_test, CloseReportsOnceAndNeverInline) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  settle();

  a->close(close_reason::shutdown);
  EXPECT_FALSE(sink.closed()) << "on_closed is posted, not called from close()";
  a->close(close_reason::local);  // a second close changes nothing
  settle();
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::shutdown);
  EXPECT_FALSE(a->enqueue(message_frame(1, 1)));

  // The peer sees the connection end.
  frame_bytes buffer(16);
  std::error_code peer_error;
  peer.async_read_some(asio::buffer(buffer),
                       [&](std::error_code ec, std::size_t) { peer_error = ec; });
  ASSERT_TRUE(run_until([&] { return bool(peer_error); }));
  EXPECT_EQ(peer_error, asio::error::eof);
}

TEST_F(link_test, DetachedSinkHearsNothing) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  a->detach();
  a->stream().inject(message_frame(1, 1));
  peer.close();
  ASSERT_TRUE(run_until([&] { return !a->is_open(); }));
  settle();
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_FALSE(sink.closed());
}

TEST_F(link_test, CloseAfterFlushWritesTheQueueFirst) {
  auto [sa, sb] = streams({.max_write = 500});
  auto a = make_link(std::move(sa));
  auto b = make_link(std::move(sb));
  recording_sink sink_a, sink_b;
  a->start(&sink_a);
  b->start(&sink_b);

  std::vector<frame_bytes> sent;
  for (std::uint32_t i = 0; i < 100; ++i) {
    sent.push_back(message_frame(i, 40));
    ASSERT_TRUE(a->enqueue(sent.back()));
  }
  wire::append_goodbye(a->outbound(), leave_reason::graceful);  // what a producer does
  a->close_after_flush(close_reason::shutdown);
  EXPECT_FALSE(a->writable());
  EXPECT_FALSE(a->enqueue(message_frame(999, 1))) << "nothing joins the queue once closing";
  // What the peer sends meanwhile is not delivered to a closing link's sink.
  a->stream().inject(message_frame(500, 1));

  ASSERT_TRUE(run_until([&] { return sink_a.closed() && sink_b.closed(); }));
  settle();
  ASSERT_EQ(sink_b.frames.size(), sent.size() + 1);
  EXPECT_EQ(std::vector<frame_bytes>(sink_b.frames.begin(), sink_b.frames.end() - 1), sent);
  EXPECT_EQ(static_cast<wire::frame_type>(sink_b.frames.back()[4]), wire::frame_type::goodbye);
  ASSERT_EQ(sink_b.closes.size(), 1u);
  EXPECT_EQ(sink_b.closes[0].first, close_reason::eof);

  EXPECT_TRUE(sink_a.frames.empty());
  ASSERT_EQ(sink_a.closes.size(), 1u);
  EXPECT_EQ(sink_a.closes[0].first, close_reason::shutdown);
}

TEST_F(link_test, CloseAfterFlushIsBoundedWhenThePeerDoesNotRead) {
  auto [sa, peer] = streams({.max_unread = 16});  // the peer reads nothing
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  for (std::uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(a->enqueue(message_frame(i, 40)));

  const auto started = clock::now();
  a->close_after_flush(close_reason::refused, 30ms);
  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  const auto waited = clock::now() - started;
  settle();
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::refused);
  EXPECT_GE(waited, 30ms) << "gave up before `within`";
  EXPECT_EQ(peer.unread(), 16u);
}

// ---- the bounded queue ----

TEST_F(link_test, EnqueueRespectsMaxQueueBytesIncludingTheBatchInFlight) {
  auto [sa, peer] = streams({.max_unread = 1});  // the first write stays in flight
  auto a = make_link(std::move(sa), {.max_queue_bytes = 1000, .name = "a"});
  recording_sink sink;
  a->start(&sink);

  std::vector<frame_bytes> sent;
  for (std::uint32_t i = 0; i < 10; ++i) {
    sent.push_back(frame_of_size(i, 100));
    ASSERT_TRUE(a->has_room(100));
    ASSERT_TRUE(a->enqueue(sent.back())) << "frame " << i;
  }
  EXPECT_EQ(a->queued_bytes(), 1000u);
  EXPECT_TRUE(a->has_room(0));
  EXPECT_FALSE(a->has_room(1));
  EXPECT_FALSE(a->enqueue(frame_of_size(10, 100)));
  EXPECT_EQ(a->queued_bytes(), 1000u) << "a refused frame queues nothing";

  // The writer takes the queue but cannot finish: those bytes still count.
  ASSERT_TRUE(run_until([&, &peer = peer] { return peer.unread() == 1; }));
  settle();
  EXPECT_EQ(a->queued_bytes(), 1000u);
  EXPECT_FALSE(a->enqueue(frame_of_size(11, 100)));

  a->stream().options().max_unread = 0;
  frame_bytes received = peer.take_unread();
  ASSERT_TRUE(run_until([&] { return a->queued_bytes() == 0; }));
  EXPECT_TRUE(a->has_room(1000));
  EXPECT_FALSE(a->has_room(1001));
  sent.push_back(frame_of_size(12, 100));
  EXPECT_TRUE(a->enqueue(sent.back()));
  ASSERT_TRUE(run_until([&] { return a->queued_bytes() == 0; }));
  settle();
  const frame_bytes rest = peer.take_unread();
  received.insert(received.end(), rest.begin(), rest.end());
  EXPECT_EQ(split_frames(received), sent) << "exactly the accepted frames, in order";
}

// ---- heartbeats ----

TEST_F(link_test, IdleLinkSendsHeartbeatsAtTheInterval) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  const auto started = clock::now();
  a->start(&sink);
  a->enable_heartbeats(20ms, 2000ms);  // the raw peer never writes; no timeout in this test

  ASSERT_TRUE(run_until([&, &peer = peer] { return peer.unread() >= 3 * wire::header_size; }));
  const auto waited = clock::now() - started;
  frame_bytes expected;
  for (int i = 0; i < 3; ++i) wire::append_heartbeat(expected);
  const frame_bytes got = peer.take_unread();
  EXPECT_EQ(got, expected) << "only heartbeat frames, whole";
  // The first is due at the last point of the interval grid within an interval (it may come
  // early), and each later one an interval after the one before it.
  EXPECT_GE(waited, 40ms) << "three heartbeats need at least two idle intervals";
  EXPECT_FALSE(sink.closed());
}

TEST_F(link_test, HeartbeatsKeepBothEndsOpenAndNeverReachTheSink) {
  auto [sa, sb] = streams();
  auto a = make_link(std::move(sa));
  auto b = make_link(std::move(sb));
  recording_sink sink_a, sink_b;
  a->start(&sink_a);
  b->start(&sink_b);
  // Generous intervals: a stall of the whole process delays the sender's heartbeat and the
  // receiver's check alike, so only a stall near the timeout could close a healthy link.
  a->enable_heartbeats(50ms, 150ms);
  b->enable_heartbeats(50ms, 150ms);

  // Four intervals each way, past the timeout, with nothing but heartbeats on the wire.
  ASSERT_TRUE(run_until([&] {
    return sink_a.closed() || sink_b.closed() ||
           (a->stream().stats().bytes_read >= 4 * wire::header_size &&
            b->stream().stats().bytes_read >= 4 * wire::header_size);
  }));
  EXPECT_FALSE(sink_a.closed());
  EXPECT_FALSE(sink_b.closed());
  EXPECT_TRUE(sink_a.frames.empty());
  EXPECT_TRUE(sink_b.frames.empty());
}

// ---- round-trip probes (protocol.md §8.2) ----

TEST_F(link_test, ProbesMeasureTheRoundTripBothWaysAndNeverReachTheSink) {
  auto [sa, sb] = streams();
  auto a = make_link(std::move(sa));
  auto b = make_link(std::move(sb));
  recording_sink sink_a, sink_b;
  a->start(&sink_a);
  b->start(&sink_b);
  EXPECT_FALSE(a->round_trip()) << "no figure before a probe came back";
  a->enable_heartbeats(20ms, 2000ms);
  b->enable_heartbeats(20ms, 2000ms);
  a->enable_probes(true);
  b->enable_probes(true);

  ASSERT_TRUE(run_until([&] { return a->round_trip() && b->round_trip(); }));
  EXPECT_FALSE(sink_a.closed());
  EXPECT_FALSE(sink_b.closed());
  EXPECT_TRUE(sink_a.frames.empty()) << "probes and replies are the link's own";
  EXPECT_TRUE(sink_b.frames.empty());
  EXPECT_GT(a->round_trip()->count(), 0);
  EXPECT_LT(*a->round_trip(), 2000ms);
}

TEST_F(link_test, AProbeIsAnsweredWithItsTokenAndAnUnaskedReplyChangesNothing) {
  auto [sa, peer] = streams();
  recording_sink sink;
  auto a = settled_link(std::move(sa), sink);
  a->enable_probes(false);  // answers, but the peer said it answers none: sends none

  frame_bytes input;
  wire::append_probe(input, 42);
  a->stream().inject(input);
  frame_bytes expected;
  wire::append_probe_reply(expected, 42);
  ASSERT_TRUE(run_until([&, &peer = peer] { return peer.unread() >= expected.size(); }));
  EXPECT_EQ(peer.take_unread(), expected);
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_FALSE(a->round_trip());
}

TEST_F(link_test, OnlyTheReplyToTheProbeOutstandingIsASample) {
  auto [sa, peer] = streams();
  recording_sink sink;
  auto a = make_link(std::move(sa));
  a->start(&sink);
  a->enable_heartbeats(20ms, 2000ms);
  a->enable_probes(true);
  // The peer never answers by itself: read the probe's token off the wire.
  std::uint64_t token = 0;
  ASSERT_TRUE(run_until([&, &peer = peer] {
    for (const auto& f : split_frames(peer.take_unread()))
      if (static_cast<wire::frame_type>(f[4]) == wire::frame_type::probe)
        token = base::load_le<std::uint64_t>(f.data() + wire::header_size);
    return token != 0;
  }));
  frame_bytes wrong;
  wire::append_probe_reply(wrong, token + 1);
  a->stream().inject(wrong);
  run_for(20ms);
  EXPECT_FALSE(a->round_trip()) << "a reply to no probe of ours is ignored";
  frame_bytes right;
  wire::append_probe_reply(right, token);
  a->stream().inject(right);
  ASSERT_TRUE(run_until([&] { return a->round_trip().has_value(); }));
  EXPECT_FALSE(sink.closed());
  EXPECT_TRUE(sink.frames.empty());
}

TEST_F(link_test, SilentPeerClosesWithHeartbeatTimeout) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  const auto started = clock::now();
  a->start(&sink);
  a->enable_heartbeats(20ms, 60ms);

  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  const auto waited = clock::now() - started;
  settle();
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::heartbeat_timeout);
  EXPECT_GE(waited, 60ms) << "closed before interval x misses of silence";
  EXPECT_GT(peer.unread(), 0u) << "the link did send heartbeats meanwhile";
}

// An operator reading why a link ended needs to know which side fell silent: the line says how
// long ago each side last heard from and wrote to the other, and the limit that was applied.
TEST_F(link_test, AHeartbeatTimeoutLogsTheSilenceTheLimitAndOurOwnWrites) {
  test::captured_log log;
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  a->enable_heartbeats(20ms, 60ms);

  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  settle();
  const std::string text = log.text();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      text, m,
      std::regex(R"(closed: heartbeat timeout \(last read (\d+) ms ago, against a limit of (\d+) )"
                 R"(ms; last write (\d+) ms ago, 0 bytes queued\))")))
      << text;
  EXPECT_GE(std::stoi(m[1]), 60) << "the silence it judged";
  EXPECT_GE(std::stoi(m[2]), 60) << "the limit, stretched or not";
  EXPECT_GE(std::stoi(m[1]), std::stoi(m[2])) << "closed only past the limit";
  EXPECT_LT(std::stoi(m[3]), std::stoi(m[1])) << "its own heartbeats went out meanwhile";
}

TEST_F(link_test, HeartbeatsTellAPeerThatAskedHowLateThisProcessRuns) {
  auto [sa, peer] = streams();
  recording_sink sink;
  auto a = late_link(std::move(sa), sink, /*peer_lateness=*/1);

  ASSERT_TRUE(run_until([&, &peer = peer] { return peer.unread() >= wire::header_size + 4; }));
  const auto frames = split_frames(peer.take_unread());
  ASSERT_FALSE(frames.empty());
  wire::frame_parser parser;
  const auto first = parser.parse(frames.front());
  ASSERT_EQ(first.state, wire::parse_result::status::frame);
  ASSERT_EQ(first.frame.header.type, wire::frame_type::heartbeat);
  const auto reported = wire::decode_heartbeat(first.frame);
  // Decayed a little (half-life 2 s) between the tick and the heartbeat, never grown.
  EXPECT_LE(reported, 950u);
  EXPECT_GE(reported, 500u);
}

TEST_F(link_test, WhileThisProcessRunsLateItsHeartbeatsGoFurtherApart) {
  // Reported a second late, to a peer that stretches 8x: every 4 intervals at most (§8.1), so at
  // most one heartbeat per 80 ms (and one early, to reach the grid) where there were one per 20.
  auto [sa, peer] = streams();
  recording_sink sink;
  auto a = late_link(std::move(sa), sink, /*peer_lateness=*/8);

  ASSERT_TRUE(run_until([&, &peer = peer] { return peer.unread() > 0; }));
  const auto since = clock::now();
  run_for(800ms);
  const auto window = clock::now() - since;
  const auto heartbeats = split_frames(peer.take_unread()).size();
  EXPECT_LE(heartbeats, static_cast<std::size_t>(window / 80ms) + 2)
      << heartbeats << " heartbeats in " << window / 1ms << " ms";
  EXPECT_FALSE(sink.closed());
}

TEST_F(link_test, APeerThatDidNotAskGetsBodilessHeartbeatsHoweverLateThisProcessRuns) {
  // An older peer refuses a heartbeat with a body: lateness goes only to a peer that asked.
  auto [sa, peer] = streams();
  recording_sink sink;
  auto a = late_link(std::move(sa), sink, /*peer_lateness=*/0);

  ASSERT_TRUE(run_until([&, &peer = peer] { return peer.unread() >= 2 * wire::header_size; }));
  frame_bytes bodiless;
  wire::append_heartbeat(bodiless);
  for (const auto& frame : split_frames(peer.take_unread())) EXPECT_EQ(frame, bodiless);
}

TEST_F(link_test, APeerThatSaysItRunsLateIsGivenMoreTimeBeforeItsSilenceCounts) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));  // its own loop punctual: no stretch of its own
  recording_sink sink;
  a->start(&sink);
  const auto started = clock::now();
  a->enable_heartbeats(50ms, 200ms, 1);
  // The peer's last word: its loop runs 3 s late. Then silence.
  frame_bytes heartbeat;
  wire::append_heartbeat(heartbeat, 3000);
  a->stream().inject(heartbeat);
  ASSERT_TRUE(run_until([&] { return a->reported_lateness(clock::now()) > 0ms; }));

  ASSERT_TRUE(run_until([&] { return sink.closed(); }, 10s));
  const auto waited = clock::now() - started;
  settle();
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::heartbeat_timeout) << "still found out, bounded";
  // 200 ms without the report; with it, up to max_stretch (8) x 200 ms.
  EXPECT_GE(waited, 1000ms) << "the peer's reported lateness did not stretch its limit";
}

TEST_F(link_test, AnyFrameCountsAsSignOfLife) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  a->enable_heartbeats(50ms, 150ms);

  // The peer sends a data frame every 10 ms and never a heartbeat, for well past the timeout.
  asio::steady_timer ticker(io_);
  int sent = 0;
  std::function<void()> tick = [&] {
    a->stream().inject(message_frame(static_cast<std::uint32_t>(sent++), 1));
    ticker.expires_after(10ms);
    ticker.async_wait([&](std::error_code ec) {
      if (!ec && sent < 25) tick();
    });
  };
  tick();
  ASSERT_TRUE(run_until([&] { return sent >= 25 || sink.closed(); }));
  settle();
  EXPECT_FALSE(sink.closed());
  EXPECT_EQ(sink.frames.size(), 25u);
  a->close(close_reason::local);
  settle();
}

// ---- expiry ----

TEST_F(link_test, ExpireAfterClosesWithTheGivenReason) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  const auto started = clock::now();
  a->expire_after(20ms, close_reason::handshake_timeout);

  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  const auto waited = clock::now() - started;
  settle();
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::handshake_timeout);
  EXPECT_GE(waited, 20ms);
}

TEST_F(link_test, CancelExpiryFirstKeepsTheLinkOpen) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  a->expire_after(20ms, close_reason::handshake_timeout);
  a->cancel_expiry();
  run_for(50ms);
  EXPECT_FALSE(sink.closed());
  EXPECT_TRUE(a->is_open());
}

TEST_F(link_test, ExpireAfterAgainReplacesTheDeadline) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  a->expire_after(10ms, close_reason::handshake_timeout);
  a->expire_after(1h, close_reason::refused);
  run_for(40ms);
  EXPECT_FALSE(sink.closed()) << "the first deadline still fired";
}

// The deadline passes and, in the same turn, a handler that ran first cancels it (a welcome
// frame read in the turn the handshake timer expired). cancel() cannot recall a timer handler
// that is already queued, so the link must not rely on it alone.
TEST_F(link_test, CancelExpiryWinsWhenTheDeadlineIsDueInTheSameTurn) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);

  // Both timers are due before the io_context runs, so one pass collects both, earliest first.
  asio::steady_timer earlier(io_);
  earlier.expires_at(clock::now() - 1s);
  bool cancelled = false;
  earlier.async_wait([&](std::error_code) {
    a->cancel_expiry();
    cancelled = true;
  });
  a->expire_after(-1ms, close_reason::handshake_timeout);

  ASSERT_TRUE(run_until([&] { return cancelled; }));
  run_for(10ms);
  EXPECT_FALSE(sink.closed()) << "closed with a deadline that had been cancelled";
  EXPECT_TRUE(a->is_open());
}

// ---- a peer of this machine starved of CPU (forgive_peer_cpu_wait) ----

// A peer that has been waiting for a core all along: its run-queue wait grows as fast as time.
test_link::cpu_wait_probe starved_since(clock::time_point start) {
  return [start]() -> std::optional<clock::duration> { return clock::now() - start; };
}

// A handshake deadline of 50 ms.
void deadline(test_link& link) {
  link.expire_after(50ms, close_reason::handshake_timeout);
}
// Heartbeats every 20 ms, and a silence limit of 100 ms.
void heartbeats(test_link& link) {
  link.enable_heartbeats(20ms, 100ms);
}

TEST_F(link_test, ADeadlineWaitsLongerForAPeerStarvedOfCpuWithinTheBound) {
  // A CPU wait is forgiven up to 40 x (max_multiplier 8 x local_health_cpu_wait_factor 5).
  const auto end = end_of_silent_peer(
      [](test_link& a) { a.forgive_peer_cpu_wait(starved_since(clock::now())); }, deadline);
  EXPECT_EQ(end.reason, close_reason::handshake_timeout) << "still expires, bounded";
  EXPECT_GE(end.after, 40 * 50ms) << "the peer's wait for a core did not lengthen its deadline";
  EXPECT_EQ(end.counters.deadlines_stretched, 1u) << "counted once per deadline";
}

TEST_F(link_test, ADeadlineWaitsNoLongerForAPeerThatWaitsForNoCore) {
  // Stuck (blocked, deadlocked, stopped): its run-queue wait stays where it was.
  const auto end = end_of_silent_peer(
      [](test_link& a) {
        a.forgive_peer_cpu_wait([]() -> std::optional<clock::duration> { return 7s; });
      },
      deadline);
  EXPECT_EQ(end.reason, close_reason::handshake_timeout);
  EXPECT_EQ(end.counters.deadlines_stretched, 0u);
}

TEST_F(link_test, APeerStarvedOfCpuIsGivenMoreTimeBeforeItsSilenceCounts) {
  const auto end = end_of_silent_peer(
      [](test_link& a) { a.forgive_peer_cpu_wait(starved_since(clock::now())); }, heartbeats);
  EXPECT_EQ(end.reason, close_reason::heartbeat_timeout) << "still found out, bounded";
  EXPECT_GE(end.after, 40 * 100ms) << "the peer's wait for a core did not stretch its limit";
  EXPECT_GE(end.counters.stretched, 1u);
}

// ---- a host link on a lossy path (forgive_path_loss) ----

// The TCP counters of a connection: each read shows `lost_per_read` more segments received out
// of order (and as many retransmitted), and the peer's kernel last heard from
// `since_peer_segment` ago.
test_link::path_probe path_counters(std::uint64_t lost_per_read,
                                    std::chrono::milliseconds since_peer_segment) {
  return [lost_per_read, since_peer_segment, lost = std::uint64_t{0}]() mutable {
    lost += lost_per_read;
    return std::optional(tcp_path_sample{
        .retransmitted = lost, .out_of_order = lost, .since_peer_segment = since_peer_segment});
  };
}

TEST_F(link_test, ASilenceOnALossyPathIsGivenMoreTimeWhileThePeersKernelAnswers) {
  // local_health's default max_loss_multiplier: 3.
  const auto end = end_of_silent_peer(
      [](test_link& a) { a.forgive_path_loss(path_counters(1, 5ms)); }, heartbeats);
  EXPECT_EQ(end.reason, close_reason::heartbeat_timeout) << "still found out, bounded";
  EXPECT_GE(end.after, 3 * 100ms) << "a silence on a lossy path was judged by the plain limit";
  EXPECT_EQ(end.counters.loss_stretched, 1u) << "counted once per silence";
}

TEST_F(link_test, ASilenceIsJudgedByThePlainLimitWhenThePeersKernelIsSilentTooOrNothingIsLost) {
  for (const auto& [lost_per_read, since_peer_segment] :
       {std::pair{1u, std::chrono::milliseconds(1h)},
        std::pair{0u, std::chrono::milliseconds(5)}}) {
    const auto end = end_of_silent_peer(
        // Copies: clang 14 cannot capture structured bindings.
        [lost = lost_per_read, since = since_peer_segment](test_link& a) {
          a.forgive_path_loss(path_counters(lost, since));
        },
        heartbeats);
    EXPECT_EQ(end.reason, close_reason::heartbeat_timeout);
    EXPECT_EQ(end.counters.loss_stretched, 0u)
        << "forgiven with " << lost_per_read << " lost per read, the peer's kernel last heard "
        << since_peer_segment.count() << " ms ago";
  }
}

}  // namespace
}  // namespace galaxies::transport

namespace galaxies::transport {
namespace {

// ---- what no peer can do to a link ----

TEST_F(link_test, AnExceptionInTheSinkClosesThatLinkWithItsReasonAndIsNeverSwallowed) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa), {.name = "a"});
  recording_sink sink;
  sink.hook = [&sink](const wire::frame_view&) {
    sink.in_on_frame = false;  // the recording sink's own bookkeeping; the throw skips it
    throw std::runtime_error("bad \x1b[31mtext");
  };
  a->start(&sink);
  a->stream().inject(concat({message_frame(1, 1), message_frame(2, 1)}));
  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0].first, close_reason::internal_error);
  EXPECT_EQ(sink.frames.size(), 1u) << "nothing after the failing frame";
  EXPECT_FALSE(a->is_open());
}

TEST_F(link_test, AReaderYieldsToTheLoopAfterItsFramesPerTurn) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa), {.max_frames_per_turn = 10, .name = "a"});
  recording_sink sink;
  std::size_t frames_when_timer_ran = 0;
  bool timer_ran = false;
  asio::post(io_, [&] {
    // Queued behind the link's first read: it must run before the 100 frames are all delivered.
    asio::post(io_, [&] {
      asio::post(io_, [&] {
        timer_ran = true;
        frames_when_timer_ran = sink.frames.size();
      });
    });
  });
  a->start(&sink);
  std::vector<frame_bytes> many;
  for (std::uint32_t i = 0; i < 100; ++i) many.push_back(message_frame(i, 1));
  a->stream().inject(concat(many));  // one read holds all of them
  ASSERT_TRUE(run_until([&] { return sink.frames.size() == 100; }));
  EXPECT_EQ(sink.frames, many) << "all of them, in order";
  ASSERT_TRUE(timer_ran);
  EXPECT_LT(frames_when_timer_ran, 100u) << "the reader never let the loop run";
}

TEST_F(link_test, LinksShareOneBudgetAndGiveBackWhatTheyWrote) {
  auto budget = std::make_shared<byte_budget>(1000);
  auto [sa, pa] = streams({.max_unread = 1});
  auto [sb, pb] = streams({.max_unread = 1});
  auto a = make_link(std::move(sa), {.budget = budget, .name = "a"});
  auto b = make_link(std::move(sb), {.budget = budget, .name = "b"});
  recording_sink sink_a, sink_b;
  a->start(&sink_a);
  b->start(&sink_b);
  for (std::uint32_t i = 0; i < 6; ++i) ASSERT_TRUE(a->enqueue(frame_of_size(i, 100)));
  EXPECT_EQ(budget->used(), 600u);
  for (std::uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(b->enqueue(frame_of_size(i, 100)));
  EXPECT_FALSE(b->has_room(1)) << "b's own bound is far, the shared one is reached";
  EXPECT_FALSE(a->enqueue(frame_of_size(9, 100)));
  // a's peer reads everything: a's share comes back, and b may grow into it.
  a->stream().options().max_unread = 0;
  pa.take_unread();
  ASSERT_TRUE(run_until([&, &pa = pa] {
    pa.take_unread();
    return a->queued_bytes() == 0;
  }));
  EXPECT_EQ(budget->used(), 400u);
  EXPECT_TRUE(b->enqueue(frame_of_size(5, 100)));
  b->close(close_reason::local);
  EXPECT_EQ(budget->used(), 0u) << "a closed link holds nothing";
}

TEST_F(link_test, AWriteThePeerDoesNotTakeShowsAsAStall) {
  auto [sa, peer] = streams({.max_unread = 1});
  auto a = make_link(std::move(sa), {.name = "a"});
  recording_sink sink;
  a->start(&sink);
  EXPECT_EQ(a->write_stalled_for(clock::now()), clock::duration::zero()) << "nothing written";
  ASSERT_TRUE(a->enqueue(frame_of_size(1, 100)));
  ASSERT_TRUE(run_until([&, &peer = peer] { return peer.unread() == 1; }));
  settle();
  run_for(30ms);
  EXPECT_GE(a->write_stalled_for(clock::now()), 30ms);
  a->stream().options().max_unread = 0;
  peer.take_unread();
  ASSERT_TRUE(run_until([&, &peer = peer] {
    peer.take_unread();
    return a->queued_bytes() == 0;
  }));
  EXPECT_EQ(a->write_stalled_for(clock::now()), clock::duration::zero());
}

// ---- backpressure ----

TEST_F(link_test, APausedLinkDeliversNothingUntilEveryPauseIsResumed) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  a->pause_reading();
  a->pause_reading();  // two receivers hold the same sender back
  std::vector<frame_bytes> sent;
  for (std::uint32_t i = 0; i < 3; ++i) sent.push_back(message_frame(i, 1));
  a->stream().inject(concat(sent));
  run_for(30ms);
  EXPECT_TRUE(sink.frames.empty());
  a->resume_reading();
  run_for(30ms);
  EXPECT_TRUE(sink.frames.empty()) << "one receiver is still full";
  a->resume_reading();
  ASSERT_TRUE(run_until([&] { return sink.frames.size() == 3; }));
  EXPECT_EQ(sink.frames, sent);
}

TEST_F(link_test, APauseFromInsideOnFrameStopsTheRestOfTheReadUntilResumed) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  sink.hook = [&](const wire::frame_view&) {
    if (sink.frames.size() == 2) a->pause_reading();
  };
  a->start(&sink);
  std::vector<frame_bytes> sent;
  for (std::uint32_t i = 0; i < 5; ++i) sent.push_back(message_frame(i, 1));
  a->stream().inject(concat(sent));  // one read holds all of them
  ASSERT_TRUE(run_until([&] { return sink.frames.size() == 2; }));
  run_for(30ms);
  EXPECT_EQ(sink.frames.size(), 2u) << "frames delivered while paused";
  sink.hook = nullptr;
  a->resume_reading();
  ASSERT_TRUE(run_until([&] { return sink.frames.size() == 5; }));
  EXPECT_EQ(sink.frames, sent);
}

TEST_F(link_test, APausedLinkIsNotTimedOutWhileItsPeersBytesWait) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  a->enable_heartbeats(20ms, 60ms);
  a->pause_reading();
  const frame_bytes frame = message_frame(1, 1);
  a->stream().inject(frame);
  run_for(200ms);  // more than three silence limits
  EXPECT_FALSE(sink.closed()) << "our pause was blamed on the peer";
  a->resume_reading();
  ASSERT_TRUE(run_until([&] { return sink.frames.size() == 1; }));
  EXPECT_EQ(sink.frames[0], frame);
}

TEST_F(link_test, OnDrainedFiresOnceWhenTheQueueFallsToTheMark) {
  auto [sa, peer] = streams({.max_unread = 1});
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  for (std::uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(a->enqueue(frame_of_size(i, 100)));
  a->notify_drained_below(a->queued_bytes() / 4);
  run_for(30ms);
  EXPECT_EQ(sink.drained, 0) << "the peer has read nothing yet";
  a->stream().options().max_unread = 0;
  ASSERT_TRUE(run_until([&, &peer = peer] {
    peer.take_unread();
    return a->queued_bytes() == 0;
  }));
  settle();
  EXPECT_EQ(sink.drained, 1);
  ASSERT_TRUE(a->enqueue(frame_of_size(9, 100)));
  ASSERT_TRUE(run_until([&, &peer = peer] {
    peer.take_unread();
    return a->queued_bytes() == 0;
  }));
  settle();
  EXPECT_EQ(sink.drained, 1) << "once per notify_drained_below";
}

TEST_F(link_test, ClosingAPausedLinkReportsTheCloseOnce) {
  auto [sa, peer] = streams();
  auto a = make_link(std::move(sa));
  recording_sink sink;
  a->start(&sink);
  a->pause_reading();
  a->stream().inject(message_frame(1, 1));
  settle();
  a->close(close_reason::local);
  ASSERT_TRUE(run_until([&] { return sink.closed(); }));
  settle();
  EXPECT_EQ(sink.closes.size(), 1u);
  EXPECT_TRUE(sink.frames.empty());
  a->resume_reading();  // a receiver that drains later must not wake anything
  settle();
  EXPECT_TRUE(sink.frames.empty());
}

}  // namespace
}  // namespace galaxies::transport
