// fair_lanes without a socket: what each write would carry. Frames are plain size-prefixed byte
// runs whose bytes name their lane and sequence number, so a lost, torn, reordered or duplicated
// frame shows when the writes are cut back into frames.
#include "transport/fair_lanes.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "base/endian.hpp"

namespace galaxies::transport {
namespace {

using bytes = std::vector<std::byte>;
constexpr std::size_t quantum = 16 * 1024;
constexpr std::size_t budget = 256 * 1024;

struct frame_id {
  std::uint32_t lane = 0;
  std::uint32_t seq = 0;
  std::size_t size = 0;
};

// A frame of `size` bytes (at least 12): size prefix, lane, sequence number, filler.
void append_frame(fair_lanes& lanes, std::uint32_t lane, std::uint32_t seq, std::size_t size) {
  auto& out = lanes.buffer(lane);
  const std::size_t at = out.size();
  out.resize(at + size, std::byte{0x5a});
  base::store_le(out.data() + at, static_cast<std::uint32_t>(size - 4));
  base::store_le(out.data() + at + 4, lane);
  base::store_le(out.data() + at + 8, seq);
  lanes.appended(size);
}

std::vector<frame_id> cut(const std::vector<fair_lanes::piece>& pieces) {
  std::vector<frame_id> frames;
  for (const auto& piece : pieces) {
    std::size_t at = 0;
    while (at < piece.size()) {
      EXPECT_GE(piece.size() - at, 12u) << "torn frame";
      const std::size_t size = std::size_t{base::load_le<std::uint32_t>(piece.data() + at)} + 4;
      EXPECT_LE(at + size, piece.size()) << "torn frame";
      frames.push_back({base::load_le<std::uint32_t>(piece.data() + at + 4),
                        base::load_le<std::uint32_t>(piece.data() + at + 8), size});
      at += size;
    }
  }
  return frames;
}

// One write: what take() picks, cut into frames, then written().
std::vector<frame_id> write_once(fair_lanes& lanes, std::size_t limit = budget) {
  std::vector<fair_lanes::piece> pieces;
  lanes.take(limit, pieces);
  auto frames = cut(pieces);
  lanes.written();
  return frames;
}

std::size_t bytes_of(const std::vector<frame_id>& frames, std::uint32_t lane) {
  std::size_t total = 0;
  for (const auto& f : frames)
    if (f.lane == lane) total += f.size;
  return total;
}

TEST(fair_lanes, EveryFrameLeavesOnceInItsLanesOrder) {
  fair_lanes lanes(quantum);
  std::map<std::uint32_t, std::uint32_t> sent;
  for (std::uint32_t seq = 0; seq < 3000; ++seq)
    for (std::uint32_t lane = 1; lane <= 3; ++lane) append_frame(lanes, lane, seq, 12 + seq % 700);
  EXPECT_EQ(lanes.lanes(), 3u);
  std::map<std::uint32_t, std::uint32_t> next;
  std::size_t writes = 0;
  while (!lanes.empty()) {
    ASSERT_LT(++writes, 1000u);
    std::size_t total = 0;
    for (const auto& f : write_once(lanes)) {
      EXPECT_EQ(f.seq, next[f.lane]++) << "lane " << f.lane;
      total += f.size;
    }
    EXPECT_LE(total, budget);
    EXPECT_GT(total, 0u);
  }
  for (std::uint32_t lane = 1; lane <= 3; ++lane) EXPECT_EQ(next[lane], 3000u);
  EXPECT_EQ(lanes.queued_bytes(), 0u);
}

TEST(fair_lanes, SourcesThatCameAndWentDoNotPileUpLanes) {
  fair_lanes lanes(quantum);
  std::uint32_t key = 1;
  for (int round = 0; round < 100; ++round) {
    for (int i = 0; i < 50; ++i) append_frame(lanes, key++, 0, 100);
    while (!lanes.empty()) write_once(lanes);
    EXPECT_LE(lanes.lanes(), fair_lanes::max_idle_lanes);
  }
  // And a lane that comes back after its release starts clean.
  append_frame(lanes, 1, 7, 100);
  const auto frames = write_once(lanes);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].lane, 1u);
  EXPECT_EQ(frames[0].seq, 7u);
}

TEST(fair_lanes, ASmallFrameGoesInTheNextWriteNotAfterTheBusyLanesQueue) {
  fair_lanes lanes(quantum);
  for (std::uint32_t seq = 0; seq < 4096; ++seq) append_frame(lanes, 1, seq, 1024);  // 4 MiB
  write_once(lanes);
  write_once(lanes);
  for (std::uint32_t seq = 0; seq < 10; ++seq) append_frame(lanes, 2, seq, 64);
  const auto next = write_once(lanes);
  EXPECT_EQ(bytes_of(next, 2), 640u);
  EXPECT_LE(bytes_of(next, 1), budget - 640);
  EXPECT_GT(lanes.queued_bytes(), 3u * 1024 * 1024);
}

TEST(fair_lanes, BusyLanesShareTheLinkEvenlyWhateverTheirFrameSizes) {
  fair_lanes lanes(quantum);
  const std::size_t sizes[] = {0, 100, 9000, 1500};
  std::size_t backlog[4] = {};
  std::size_t sent[4] = {};
  std::uint32_t seq = 0;
  for (int write = 0; write < 100; ++write) {
    // Every lane stays busy: more than a write's worth queued before each write.
    for (std::uint32_t lane = 1; lane <= 3; ++lane)
      for (; backlog[lane] < 2 * budget; backlog[lane] += sizes[lane])
        append_frame(lanes, lane, seq++, sizes[lane]);
    const auto frames = write_once(lanes);
    for (std::uint32_t lane = 1; lane <= 3; ++lane) {
      sent[lane] += bytes_of(frames, lane);
      backlog[lane] -= bytes_of(frames, lane);
    }
  }
  for (std::uint32_t lane = 2; lane <= 3; ++lane) {
    const double ratio = static_cast<double>(sent[lane]) / static_cast<double>(sent[1]);
    EXPECT_GT(ratio, 0.95) << "lane " << lane << ": " << sent[lane] << " vs " << sent[1];
    EXPECT_LT(ratio, 1.05) << "lane " << lane << ": " << sent[lane] << " vs " << sent[1];
  }
}

TEST(fair_lanes, AFrameLargerThanAWriteGoesAloneAndIsNotStarvedBySmallFrames) {
  fair_lanes lanes(quantum);
  append_frame(lanes, 1, 0, 1024 * 1024);
  std::uint32_t seq = 0;
  bool big_sent = false;
  std::size_t small_before_big = 0;
  for (int write = 0; write < 200 && !big_sent; ++write) {
    while (lanes.queued_bytes() < 1024 * 1024 + 2 * budget) append_frame(lanes, 2, seq++, 200);
    for (const auto& f : write_once(lanes)) {
      if (f.lane == 1) {
        EXPECT_EQ(f.size, 1024u * 1024u);
        big_sent = true;
      } else if (!big_sent) {
        small_before_big += f.size;
      }
    }
  }
  ASSERT_TRUE(big_sent);
  // Deficit round robin: the small lane sends about as much as the large frame before it goes.
  EXPECT_GE(small_before_big, 1024u * 1024u * 9 / 10);
  EXPECT_LE(small_before_big, 1024u * 1024u + 2 * budget);
}

TEST(fair_lanes, ALoneLargeFrameGoesAtOnce) {
  fair_lanes lanes(quantum);
  append_frame(lanes, 7, 0, 3 * budget);
  const auto frames = write_once(lanes);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].size, 3 * budget);
  EXPECT_TRUE(lanes.empty());
}

TEST(fair_lanes, PiecesStayIntactWhileProducersAppendAndAfterClear) {
  fair_lanes lanes(quantum);
  for (std::uint32_t seq = 0; seq < 100; ++seq) append_frame(lanes, 1, seq, 300);
  std::vector<fair_lanes::piece> pieces;
  lanes.take(budget, pieces);
  const bytes before(pieces.at(0).begin(), pieces.at(0).end());
  // Enough to reallocate any buffer the pieces could point into.
  for (std::uint32_t seq = 100; seq < 20000; ++seq) append_frame(lanes, 1, seq, 300);
  EXPECT_TRUE(std::equal(before.begin(), before.end(), pieces.at(0).begin()));
  lanes.clear();
  EXPECT_TRUE(std::equal(before.begin(), before.end(), pieces.at(0).begin()));
  EXPECT_EQ(lanes.queued_bytes(), before.size());
  lanes.written();
  EXPECT_TRUE(lanes.empty());
  pieces.clear();
  lanes.take(budget, pieces);
  EXPECT_TRUE(pieces.empty());
}

TEST(fair_lanes, FramesAppendedDuringAWriteFollowInTheNext) {
  fair_lanes lanes(quantum);
  append_frame(lanes, 1, 0, 100);
  std::vector<fair_lanes::piece> pieces;
  lanes.take(budget, pieces);
  append_frame(lanes, 1, 1, 100);
  append_frame(lanes, 2, 0, 100);
  ASSERT_EQ(cut(pieces).size(), 1u);
  lanes.written();
  const auto next = write_once(lanes);
  ASSERT_EQ(next.size(), 2u);
  EXPECT_EQ(bytes_of(next, 1), 100u);
  EXPECT_EQ(bytes_of(next, 2), 100u);
  EXPECT_TRUE(lanes.empty());
}

TEST(fair_lanes, MoveOutHandsOverWhatNoWriteHasPickedInOrder) {
  fair_lanes lanes(quantum);
  for (std::uint32_t seq = 0; seq < 100; ++seq) append_frame(lanes, 1, seq, 1000);
  std::vector<fair_lanes::piece> pieces;
  lanes.take(20'000, pieces);
  const auto in_write = cut(pieces);
  ASSERT_FALSE(in_write.empty());
  for (std::uint32_t seq = 100; seq < 110; ++seq) append_frame(lanes, 1, seq, 1000);
  bytes out;
  EXPECT_EQ(lanes.move_out(1, out), (110 - in_write.size()) * 1000);
  lanes.written();
  EXPECT_TRUE(lanes.empty());
  const auto moved = cut({fair_lanes::piece(out)});
  ASSERT_EQ(in_write.size() + moved.size(), 110u);
  for (std::size_t i = 0; i < moved.size(); ++i) EXPECT_EQ(moved[i].seq, in_write.size() + i);
  pieces.clear();
  lanes.take(budget, pieces);
  EXPECT_TRUE(pieces.empty());
}

// Cuts writes into frames like a receiving link: `fragment` slices are joined into their frame,
// whose bytes are checked.
struct assembler {
  bytes partial;
  std::vector<frame_id> frames;
  std::size_t slices = 0;

  void write(const std::vector<fair_lanes::piece>& pieces) {
    bytes all;
    for (const auto& p : pieces) all.insert(all.end(), p.begin(), p.end());
    std::size_t at = 0;
    while (at < all.size()) {
      ASSERT_GE(all.size() - at, 8u) << "torn frame";
      const std::size_t size = std::size_t{base::load_le<std::uint32_t>(all.data() + at)} + 4;
      ASSERT_LE(at + size, all.size()) << "torn frame";
      if (all[at + 4] == std::byte{0x25}) {
        ++slices;
        partial.insert(partial.end(), all.begin() + static_cast<std::ptrdiff_t>(at + 8),
                       all.begin() + static_cast<std::ptrdiff_t>(at + size));
        if (partial.size() >= 4 &&
            partial.size() == std::size_t{base::load_le<std::uint32_t>(partial.data())} + 4) {
          frames.push_back(whole(partial));
          partial.clear();
        }
      } else {
        frames.push_back(whole(bytes(all.begin() + static_cast<std::ptrdiff_t>(at),
                                     all.begin() + static_cast<std::ptrdiff_t>(at + size))));
      }
      at += size;
    }
  }
  static frame_id whole(const bytes& f) {
    for (std::size_t i = 12; i < f.size(); ++i)
      if (f[i] != std::byte{0x5a}) {
        ADD_FAILURE() << "a frame's filler was torn at byte " << i;
        break;
      }
    return {base::load_le<std::uint32_t>(f.data() + 4), base::load_le<std::uint32_t>(f.data() + 8),
            f.size()};
  }
};

TEST(fair_lanes, ALargeFrameGoesInSlicesBetweenTheOtherLanesFrames) {
  fair_lanes lanes(quantum, 64 * 1024);
  append_frame(lanes, 1, 0, 1024 * 1024 + 3);
  append_frame(lanes, 1, 1, 100);
  assembler got;
  std::uint32_t seq = 0;
  std::size_t writes_while_large = 0;
  const auto lane1_frames = [&] {
    return std::count_if(got.frames.begin(), got.frames.end(),
                         [](const frame_id& f) { return f.lane == 1; });
  };
  for (int write = 0; lane1_frames() < 2; ++write) {
    ASSERT_LT(write, 100);
    // The other lane stays busy throughout: more than a write's worth queued each time.
    for (int i = 0; i < 1500; ++i) append_frame(lanes, 2, seq++, 200);
    std::vector<fair_lanes::piece> pieces;
    lanes.take(budget, pieces);
    std::size_t total = 0;
    for (const auto& p : pieces) total += p.size();
    EXPECT_LE(total, budget + wire::header_size);
    const std::size_t before = got.frames.size();
    got.write(pieces);
    lanes.written();
    if (lane1_frames() == 0) {
      ++writes_while_large;
      EXPECT_GT(got.frames.size(), before) << "the other lane waited for the large frame";
    }
  }
  // About half of each write for each lane: 1 MiB in about 8 writes of 256 KiB.
  EXPECT_GE(got.slices, 7u);
  EXPECT_GE(writes_while_large, 7u);
  EXPECT_LE(writes_while_large, 10u);
  std::vector<frame_id> lane1;
  for (const auto& f : got.frames)
    if (f.lane == 1) lane1.push_back(f);
  ASSERT_EQ(lane1.size(), 2u);
  EXPECT_EQ(lane1[0].size, 1024u * 1024 + 3);
  EXPECT_EQ(lane1[0].seq, 0u);
  EXPECT_EQ(lane1[1].seq, 1u);
}

TEST(fair_lanes, ALargeFrameAloneGoesInWriteSizedSlices) {
  fair_lanes lanes(quantum, 64 * 1024);
  append_frame(lanes, 1, 0, 1024 * 1024 + 100);
  assembler got;
  int writes = 0;
  while (!lanes.empty()) {
    ASSERT_LT(++writes, 100);
    std::vector<fair_lanes::piece> pieces;
    lanes.take(budget, pieces);
    got.write(pieces);
    lanes.written();
  }
  ASSERT_EQ(got.frames.size(), 1u);
  EXPECT_EQ(got.frames[0].size, 1024u * 1024 + 100);
  EXPECT_EQ(writes, 5);  // 4 full writes and the rest: the control lane waits for one at most
}

TEST(fair_lanes, MovingOutAFrameInSlicesHandsOverItsRestAsItsLastFragment) {
  fair_lanes lanes(quantum, 64 * 1024);
  append_frame(lanes, 1, 0, 512 * 1024);
  append_frame(lanes, 1, 1, 100);
  append_frame(lanes, 2, 0, 100);
  assembler got;
  std::vector<fair_lanes::piece> pieces;
  lanes.take(budget, pieces);
  got.write(pieces);
  ASSERT_TRUE(got.frames.empty() || got.frames.back().lane == 2);
  ASSERT_GT(got.slices, 0u);
  bytes out;
  lanes.move_out(1, out);
  lanes.written();
  got.write({fair_lanes::piece(out)});
  while (!lanes.empty()) {
    pieces.clear();
    lanes.take(budget, pieces);
    got.write(pieces);
    lanes.written();
  }
  std::vector<std::uint32_t> lane1;
  for (const auto& f : got.frames)
    if (f.lane == 1) lane1.push_back(f.seq);
  EXPECT_EQ(lane1, (std::vector<std::uint32_t>{0, 1}));
  EXPECT_TRUE(got.partial.empty());
}

}  // namespace
}  // namespace galaxies::transport
