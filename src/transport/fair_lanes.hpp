// The data lanes of one link, one per source, and the deficit round robin (Shreedhar and Varghese)
// that decides what each write carries: a source with megabytes queued gets its share of the link,
// and a source with one small frame waits for one quantum of each busy source, not for their
// queues. Order is kept within a lane, not between lanes. A frame too large to wait for its turns
// goes in slices, as `fragment` frames (protocol.md §2.1), one such frame at a time per link, so a
// 16 MiB message does not hold the link either. Pure data: knows frames only by their size prefix
// and the fragment header, and no sockets.
// Threading: one executor, like the link that owns it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "wire/frame.hpp"

namespace galaxies::transport {

class fair_lanes {
 public:
  using lane_key = std::uint64_t;
  using piece = std::span<const std::byte>;

  // `quantum`: the bytes a lane may send per turn (a larger frame waits for turns to add up).
  // `fragment_above`: a frame larger than this (0: none) that does not fit its lane's turns or
  // the write goes in slices instead.
  explicit fair_lanes(std::size_t quantum, std::size_t fragment_above = 0) noexcept
      : quantum_(quantum), fragment_above_(fragment_above) {}

  // Where a producer appends whole frames for `key` (each frame starts with its little-endian size
  // prefix, as on the wire); then it calls appended() with the bytes it added.
  std::vector<std::byte>& buffer(lane_key key);
  void appended(std::size_t bytes) noexcept { queued_ += bytes; }

  // The next write's data: whole frames and slices, at most `budget` bytes (or one larger frame,
  // alone), picked in turn from every lane with data, appended to `out` (one piece per lane, after
  // a fragment header for a slice). The pieces stay valid, and producers may keep appending,
  // until written().
  void take(std::size_t budget, std::vector<piece>& out);
  // The write of what take() picked is done: those bytes leave their lanes.
  void written();
  // Moves `key`'s frames that no write has picked yet to the end of `out`, in order (the lane
  // stays, empty); the rest of a frame going in slices moves as its last fragment. Returns the
  // bytes moved.
  std::size_t move_out(lane_key key, std::vector<std::byte>& out);

  std::size_t queued_bytes() const noexcept { return queued_; }
  bool empty() const noexcept { return queued_ == 0; }
  // Lanes, idle ones included: at most max_idle_lanes of them are idle once a write is done.
  std::size_t lanes() const noexcept { return by_key_.size(); }
  static constexpr std::size_t max_idle_lanes = 16;
  // Drops everything queued (the link closed).
  void clear();

 private:
  struct lane {
    lane_key key = 0;
    std::vector<std::byte> filling;   // producers append here
    std::vector<std::byte> draining;  // the writer reads here, from `sent` on
    std::size_t sent = 0;
    std::size_t taking = 0;  // bytes of draining picked by the write in progress
    std::size_t deficit = 0;
    bool in_ring = false;
    bool resumes = false;       // its last turn was cut short by a full write: no new quantum
    std::size_t frag_left = 0;  // going in slices: bytes of its head frame not picked yet
    std::size_t slice = 0;      // bytes at the start of this write's piece that are a slice
    lane* next = nullptr;       // in the ring
  };
  using lane_map = std::unordered_map<lane_key, lane>;
  // How a lane's turn ended: it waits for a later turn (short of deficit, or its next frames are
  // still the producers'), the write is full, or the lane has nothing left.
  enum class turn { waits, full, empty };

  turn take_turn(lane& l, std::size_t budget, std::size_t& total, std::size_t& shortfall);
  std::size_t head_frame_size(const lane& l, std::size_t at) const noexcept;
  void went_idle();
  void release(lane* l);
  void push_back(lane* l) noexcept;
  void push_front(lane* l) noexcept;
  lane* pop_front() noexcept;

  std::size_t quantum_;
  std::size_t fragment_above_;
  lane* fragmenting_ = nullptr;  // the lane whose head frame goes in slices
  std::array<std::byte, wire::header_size> fragment_header_{};  // of this write's slice
  std::size_t queued_ = 0;
  // Lanes live in the map's nodes (stable addresses); a released lane's node is kept, with its
  // buffers, for the next new source: a lane that comes and goes with each request costs no
  // allocation.
  lane_map by_key_;
  std::vector<lane_map::node_type> spare_;
  lane* last_ = nullptr;  // the lane of the last buffer() call: producers come in runs
  // The lanes with data, in turn order: an intrusive queue, no allocation per turn.
  lane* ring_head_ = nullptr;
  lane* ring_tail_ = nullptr;
  std::size_t ring_size_ = 0;
  std::vector<lane*> in_write_;  // lanes with bytes in the write in progress
};

}  // namespace galaxies::transport
