// The writes that delivering one read's frames asks for, made when the delivery ends, in the
// reader's own turn: a frame forwarded (or answered) from inside a frame handler leaves at once,
// with one write per link for everything the read produced, and without posting a handler to wake
// a writer (which costs the loop a poll of the reactor before it runs, and the write's completion
// another). Links outside a batch wake their writer as before.
// The reader also lends the batch its read buffer: the frames it hands out stay where they lie
// until the batch ends, so a link that can write them at once keeps a span to them instead of a
// copy (cut-through, link.hpp's borrow()). The reader compacts or reuses that buffer only after.
// Threading: a batch belongs to the thread that opened it and lives within one synchronous call
// (never across a suspension); one batch at a time per thread, nested ones join the outer.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <span>

namespace galaxies::transport {

class write_batch {
 public:
  // Writes what a link has queued (or hands it to its writer); called once per add().
  using write_fn = void (*)(void* link) noexcept;

  write_batch() noexcept;
  // A batch whose opener keeps `stable` as it is until the batch ends. A nested batch lends
  // nothing: its opener's memory may change once it returns, before the outer batch ends.
  explicit write_batch(std::span<const std::byte> stable) noexcept;
  write_batch(const write_batch&) = delete;
  write_batch& operator=(const write_batch&) = delete;
  // Also on an exception from a frame handler: a link taken into the batch must still write.
  ~write_batch();

  // The batch open on this thread, or null.
  static write_batch* current() noexcept { return current_; }

  // Whether `bytes` lie wholly in memory that stays as it is until this batch ends.
  bool holds_stable(std::span<const std::byte> bytes) const noexcept {
    const std::less<const std::byte*> before;  // a total order, across unrelated arrays too
    return !bytes.empty() && !before(bytes.data(), stable_.data()) &&
           !before(stable_.data() + stable_.size(), bytes.data() + bytes.size());
  }

  // Takes a link's write into the batch; false when the batch is full (the link wakes its own
  // writer then). The link stays alive until the batch ends (its idle writer holds it).
  bool add(void* link, write_fn write) noexcept {
    if (size_ == entries_.size()) return false;
    entries_[size_++] = {link, write};
    return true;
  }

 private:
  struct entry {
    void* link;
    write_fn write;
  };
  // A read's frames go to a few links (a master forwards to one peer or worker per frame, and
  // answers the sender); more than this and the rest wake their writers as before.
  static constexpr std::size_t capacity = 16;

  static thread_local write_batch* current_;
  write_batch* outer_;
  std::span<const std::byte> stable_;
  std::array<entry, capacity> entries_;
  std::size_t size_ = 0;
};

}  // namespace galaxies::transport
