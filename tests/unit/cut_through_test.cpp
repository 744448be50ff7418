// Cut-through forwarding (transport/link.hpp, borrow()): a frame a reader hands out, pushed onto
// another link inside the delivery, is written from the reader's buffer when that link is idle,
// and copied only when it must wait (a busy queue, a partial write, anything queued behind it),
// in time, before the buffer is reused. Each test relays frames from a source link (bytes
// injected at its end, as a peer would send them) to a destination link whose peer end the test
// reads, as a master forwards; the destination's counts say what was copied.
#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "base/endian.hpp"
#include "link_test_support.hpp"
#include "support/eventually.hpp"
#include "support/test_stream.hpp"
#include "transport/byte_budget.hpp"
#include "transport/link.hpp"
#include "wire/frame.hpp"

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;
using namespace link_support;
using test::stream_options;
using test::test_stream;
using test_link = basic_link<test_stream>;

std::size_t total_size(const std::vector<frame_bytes>& frames) {
  return concat(frames).size();
}

// `frame` cut into `fragment` frames (protocol.md §2.1) of at most `slice` bytes of it each.
frame_bytes fragments_of(const frame_bytes& frame, std::size_t slice) {
  frame_bytes out;
  for (std::size_t at = 0; at < frame.size(); at += slice) {
    const std::size_t n = std::min(slice, frame.size() - at);
    const std::size_t header = out.size();
    out.resize(header + wire::header_size);
    wire::store_fragment_header(out.data() + header, n);
    out.insert(out.end(), frame.begin() + static_cast<std::ptrdiff_t>(at),
               frame.begin() + static_cast<std::ptrdiff_t>(at + n));
  }
  return out;
}

class cut_through_test : public ::testing::Test {
 protected:
  // A source link reading what inject() gives it, and a destination link writing to `out_`;
  // `destination` options are those of the destination's own writes.
  void start(link_settings source_settings = {}, link_settings destination_settings = {},
             const stream_options& destination = {}) {
    auto [source_end, source_peer] = test::make_stream_pair(io_.get_executor(), {}, {});
    auto [destination_end, out] = test::make_stream_pair(io_.get_executor(), destination, {});
    source_peer_.emplace(std::move(source_peer));
    out_.emplace(std::move(out));
    source_settings.name = "source";
    destination_settings.name = "destination";
    source_ = std::make_shared<test_link>(std::move(source_end), std::move(source_settings));
    destination_ =
        std::make_shared<test_link>(std::move(destination_end), std::move(destination_settings));
    source_->start(&source_sink_);
    destination_->start(&destination_sink_);
    settle();
  }

  // Every frame the source delivers is pushed onto the destination (as router::deliver does),
  // in `lane`, then `after` runs.
  void forward_each_frame(fair_lanes::lane_key lane = 0,
                          std::function<void(const wire::frame_view&)> after = {}) {
    source_sink_.hook = [this, lane, after = std::move(after)](const wire::frame_view& frame) {
      ASSERT_TRUE(destination_->writable());
      ASSERT_TRUE(destination_->has_room(frame.bytes.size()));
      destination_->push(frame.bytes, lane);
      if (after) after(frame);
    };
  }

  void deliver(const frame_bytes& bytes) {
    source_->stream().inject(bytes);
    settle();
  }

  void settle() {
    if (io_.stopped()) io_.restart();
    while (io_.poll() > 0) {
    }
  }

  // Lets the destination write on (its peer reads everything) until `bytes` arrived.
  std::vector<frame_bytes> receive(std::size_t bytes) {
    destination_->stream().options().max_unread = 0;
    frame_bytes received;
    EXPECT_TRUE(test::run_until(
        io_,
        [&] {
          const frame_bytes more = out_->take_unread();
          received.insert(received.end(), more.begin(), more.end());
          return received.size() >= bytes;
        },
        5s));
    settle();
    const frame_bytes rest = out_->take_unread();
    received.insert(received.end(), rest.begin(), rest.end());
    return split_frames(received);
  }

  const link_traffic& copies() const { return destination_->traffic(); }

  asio::io_context io_;
  recording_sink source_sink_, destination_sink_;
  std::shared_ptr<test_link> source_, destination_;
  std::optional<test_stream> source_peer_, out_;
};

// ---- written from where they lie ----

class cut_through_lanes_test : public cut_through_test,
                               public ::testing::WithParamInterface<bool> {};

TEST_P(cut_through_lanes_test, FramesForwardedToAnIdleLinkAreWrittenWithoutACopy) {
  const bool fair = GetParam();
  auto budget = std::make_shared<byte_budget>(1 << 20);
  start({}, {.fair_share = fair, .budget = budget});
  const std::vector<frame_bytes> frames{message_frame(1, 10), message_frame(2, 300),
                                        message_frame(3, 0)};
  std::size_t pushed = 0;
  forward_each_frame(fair ? 7 : 0, [&](const wire::frame_view& frame) {
    // Borrowed bytes are queued bytes: the bounds and the process budget judge them as before.
    pushed += frame.bytes.size();
    EXPECT_EQ(destination_->queued_bytes(), pushed);
    EXPECT_EQ(budget->used(), pushed);
  });

  deliver(concat(frames));
  EXPECT_EQ(source_sink_.frames, frames);
  EXPECT_EQ(destination_->stream().stats().writes, 1u) << "one write, from the read buffer";
  EXPECT_EQ(split_frames(out_->take_unread()), frames);
  EXPECT_EQ(copies().bytes_queued, total_size(frames));
  EXPECT_EQ(copies().bytes_copied, 0u);
  EXPECT_EQ(destination_->queued_bytes(), 0u);
  EXPECT_EQ(budget->used(), 0u);
}

INSTANTIATE_TEST_SUITE_P(OrderedAndSourceLanes, cut_through_lanes_test, ::testing::Bool());

TEST_F(cut_through_test, EachDeliveryOfAStreamIsWrittenWithoutACopy) {
  start({}, {.fair_share = true});
  forward_each_frame(3);
  std::vector<frame_bytes> sent;
  for (std::uint32_t i = 0; i < 50; ++i) {
    const std::vector<frame_bytes> frames{message_frame(2 * i, i), message_frame(2 * i + 1, 64)};
    deliver(concat(frames));
    sent.insert(sent.end(), frames.begin(), frames.end());
  }
  EXPECT_EQ(split_frames(out_->take_unread()), sent);
  EXPECT_EQ(copies().bytes_copied, 0u);
  EXPECT_EQ(copies().bytes_queued, total_size(sent));
}

// ---- copied when they must wait, before the reader's buffer changes ----

// The destination's peer reads at most 100 bytes until receive(): the batch's write takes 100,
// and the rest must be copied before the source compacts its buffer (a frame's tail waits at
// its end) and reads over it.
TEST_F(cut_through_test, APartialWriteCopiesOnlyTheRestBeforeTheReadBufferMoves) {
  start({.read_buffer_size = 1024}, {}, {.max_unread = 100});
  forward_each_frame();
  std::vector<frame_bytes> frames;
  for (std::uint32_t i = 0; i < 5; ++i) frames.push_back(frame_of_size(i, 300));
  const frame_bytes first = concat({frames[0], frames[1], frames[2]});
  const frame_bytes fourth_head(frames[3].begin(), frames[3].begin() + 100);
  const frame_bytes rest =
      concat({frame_bytes(frames[3].begin() + 100, frames[3].end()), frames[4]});

  frame_bytes read = first;
  read.insert(read.end(), fourth_head.begin(), fourth_head.end());
  deliver(read);  // 900 bytes of frames and 100 of the next: the source compacts after the batch
  EXPECT_EQ(out_->unread(), 100u);
  EXPECT_EQ(copies().bytes_copied, 800u) << "the write took 100 bytes; the rest was copied";
  deliver(rest);  // the destination is still writing: copied as before
  EXPECT_EQ(copies().bytes_copied, 1400u);

  EXPECT_EQ(receive(total_size(frames)), frames);
  EXPECT_EQ(copies().bytes_queued, 1500u);
  EXPECT_EQ(destination_->queued_bytes(), 0u);
  EXPECT_TRUE(destination_sink_.closes.empty());
}

// The destination's peer has no room left (the socket buffer is full): the batch's write takes
// nothing, and the writer sends the copies once the peer reads.
TEST_F(cut_through_test, ARefusedWriteCopiesEverythingAndTheWriterSendsIt) {
  const frame_bytes earlier = message_frame(0, 4);
  start({}, {}, {.max_unread = earlier.size()});
  ASSERT_TRUE(destination_->enqueue(earlier));  // outside a batch: copied, and fills the peer
  ASSERT_TRUE(test::run_until(
      io_, [&] { return out_->unread() == earlier.size(); }, 5s));
  settle();
  forward_each_frame();
  const std::vector<frame_bytes> frames{message_frame(1, 20), message_frame(2, 30)};
  deliver(concat(frames));
  EXPECT_EQ(copies().bytes_copied, earlier.size() + total_size(frames));
  EXPECT_EQ(receive(earlier.size() + total_size(frames)),
            (std::vector<frame_bytes>{earlier, frames[0], frames[1]}));
}

TEST_F(cut_through_test, ADestinationStillWritingGetsCopiesAsBefore) {
  start({}, {}, {.max_unread = 1});
  const frame_bytes earlier = message_frame(0, 4);
  ASSERT_TRUE(destination_->enqueue(earlier));  // its writer sends one byte, then waits
  ASSERT_TRUE(test::run_until(
      io_, [&] { return out_->unread() == 1; }, 5s));
  settle();
  forward_each_frame();
  const std::vector<frame_bytes> frames{message_frame(1, 20), message_frame(2, 30)};
  deliver(concat(frames));
  EXPECT_EQ(copies().bytes_copied, earlier.size() + total_size(frames)) << "busy: copied at once";
  EXPECT_EQ(receive(earlier.size() + total_size(frames)),
            (std::vector<frame_bytes>{earlier, frames[0], frames[1]}));
}

TEST_F(cut_through_test, ReassembledAndEncodedFramesAreCopiedAndKeepTheirOrder) {
  start({}, {.fair_share = true});
  const frame_bytes before = message_frame(1, 40);
  const frame_bytes whole = message_frame(2, 500);
  const frame_bytes encoded = message_frame(3, 7);  // as a router's answer: its own buffer
  forward_each_frame(5, [&](const wire::frame_view& frame) {
    if (frame.bytes.size() == whole.size()) destination_->push(encoded, 5);
  });

  deliver(concat({before, fragments_of(whole, 200)}));
  ASSERT_EQ(source_sink_.frames, (std::vector<frame_bytes>{before, whole}));
  EXPECT_EQ(split_frames(out_->take_unread()), (std::vector<frame_bytes>{before, whole, encoded}));
  // The first was borrowed, then copied ahead of the reassembled frame, which lies elsewhere.
  EXPECT_EQ(copies().bytes_copied, before.size() + whole.size() + encoded.size());
}

// ---- the queue's order and its promises, as if they had been copied ----

TEST_F(cut_through_test, TheOrderedLaneAppendedInTheSameBatchFollowsTheBorrowedFrames) {
  start();
  std::vector<frame_bytes> expected;
  forward_each_frame(0, [&](const wire::frame_view& frame) {
    expected.emplace_back(frame.bytes.begin(), frame.bytes.end());
    const frame_bytes note = message_frame(100 + static_cast<std::uint32_t>(expected.size()), 1);
    destination_->outbound().insert(destination_->outbound().end(), note.begin(), note.end());
    destination_->flush();
    expected.push_back(note);
  });
  const std::vector<frame_bytes> frames{message_frame(1, 10), message_frame(2, 20)};
  deliver(concat(frames));
  EXPECT_EQ(split_frames(out_->take_unread()), expected);
  EXPECT_EQ(copies().bytes_copied, total_size(frames));
}

TEST_F(cut_through_test, MergeIntoOrderedKeepsTheLanesFramesBeforeWhatFollows) {
  start({}, {.fair_share = true});
  const frame_bytes departure = message_frame(99, 3);
  forward_each_frame(4, [&](const wire::frame_view&) {
    destination_->merge_into_ordered(4);
    auto& out = destination_->outbound();
    out.insert(out.end(), departure.begin(), departure.end());
    destination_->flush();
  });
  const frame_bytes frame = message_frame(1, 10);
  deliver(frame);
  EXPECT_EQ(split_frames(out_->take_unread()), (std::vector<frame_bytes>{frame, departure}));
}

TEST_F(cut_through_test, CloseAfterFlushInTheSameBatchWritesTheBorrowedFramesThenCloses) {
  start();
  forward_each_frame(
      0, [&](const wire::frame_view&) { destination_->close_after_flush(close_reason::refused); });
  const frame_bytes frame = message_frame(1, 10);
  deliver(frame);
  ASSERT_TRUE(test::run_until(
      io_, [&] { return destination_sink_.closed(); }, 5s));
  EXPECT_EQ(destination_sink_.closes[0].first, close_reason::refused);
  EXPECT_EQ(split_frames(out_->take_unread()), std::vector<frame_bytes>{frame});
}

TEST_F(cut_through_test, ACloseInTheSameBatchDropsTheBorrowedFramesWithTheQueue) {
  auto budget = std::make_shared<byte_budget>(1 << 20);
  start({}, {.budget = budget});
  forward_each_frame(0, [&](const wire::frame_view&) { destination_->close(close_reason::local); });
  deliver(message_frame(1, 10));
  EXPECT_EQ(out_->unread(), 0u);
  EXPECT_EQ(destination_->queued_bytes(), 0u);
  EXPECT_EQ(budget->used(), 0u);
  EXPECT_EQ(destination_->stream().stats().writes, 0u);
}

TEST_F(cut_through_test, TheControlLaneStillGoesFirst) {
  start();
  const frame_bytes grant = message_frame(50, 2);
  forward_each_frame(0, [&](const wire::frame_view&) { destination_->enqueue_control(grant); });
  const frame_bytes frame = message_frame(1, 10);
  deliver(frame);
  EXPECT_EQ(split_frames(out_->take_unread()), (std::vector<frame_bytes>{grant, frame}));
  EXPECT_EQ(copies().bytes_copied, 0u) << "control frames go first: no reason to copy";
  EXPECT_EQ(destination_->stream().stats().writes, 1u);
}

// A control frame waits behind one write chunk at most: a batch borrows no more than that for a
// link, and a frame that could go in slices is never borrowed.
TEST_F(cut_through_test, ABatchBorrowsAtMostOneWriteChunkAndNoFrameThatCouldGoInSlices) {
  start({}, {.max_write_chunk = 1024, .fair_share = true, .fragment_above = 600});
  forward_each_frame(2);
  const std::vector<frame_bytes> fit{frame_of_size(1, 400), frame_of_size(2, 400)};
  deliver(concat(fit));
  EXPECT_EQ(copies().bytes_copied, 0u);
  const std::vector<frame_bytes> over{frame_of_size(3, 400), frame_of_size(4, 400),
                                      frame_of_size(5, 400)};
  deliver(concat(over));
  EXPECT_EQ(copies().bytes_copied, 1200u) << "the third is over the chunk: all three copied";
  const frame_bytes large = frame_of_size(6, 700);
  deliver(large);
  EXPECT_EQ(copies().bytes_copied, 1900u);

  std::vector<frame_bytes> all = fit;
  all.insert(all.end(), over.begin(), over.end());
  all.push_back(large);
  // Received through a link: the large frame may come in slices, which it reassembles.
  auto [reader_end, unused] = test::make_stream_pair(io_.get_executor(), {}, {});
  auto reader = std::make_shared<test_link>(std::move(reader_end), link_settings{});
  recording_sink reader_sink;
  reader->start(&reader_sink);
  reader->stream().inject(out_->take_unread());
  ASSERT_TRUE(test::run_until(
      io_, [&] { return reader_sink.frames.size() >= all.size(); }, 5s));
  EXPECT_EQ(reader_sink.frames, all);
}

}  // namespace
}  // namespace galaxies::transport
