#include "transport/shm_ring.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>

namespace galaxies::transport {
namespace {

static_assert(std::atomic<std::uint64_t>::is_always_lock_free &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "the indexes are shared between processes: they must not hide a lock");

// The ring's bytes from `at` on, wrapping: `ring` has `capacity` bytes, a power of two.
void copy_in(std::byte* ring, std::size_t capacity, std::uint64_t at,
             std::span<const std::byte> bytes) {
  const std::size_t offset = at & (capacity - 1);
  const std::size_t first = std::min(bytes.size(), capacity - offset);
  std::memcpy(ring + offset, bytes.data(), first);
  std::memcpy(ring, bytes.data() + first, bytes.size() - first);
}

void copy_out(const std::byte* ring, std::size_t capacity, std::uint64_t at,
              std::span<std::byte> into) {
  const std::size_t offset = at & (capacity - 1);
  const std::size_t first = std::min(into.size(), capacity - offset);
  std::memcpy(into.data(), ring + offset, first);
  std::memcpy(into.data() + first, ring, into.size() - first);
}

// A flag the other side set for us to see after our index moved: the fence orders our index's
// store before the flag's load, as the other side's fence orders its flag's store before its
// look at our index; so either it saw our move, or we see its flag.
bool take_flag(std::atomic<std::uint32_t>& flag) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (flag.load(std::memory_order_relaxed) == 0) return false;
  return flag.exchange(0, std::memory_order_acq_rel) != 0;
}

}  // namespace

shm_ring_side::shm_ring_side(std::span<std::byte> region)
    : header_(reinterpret_cast<shm_ring_header*>(region.data())),
      data_(region.data() + sizeof(shm_ring_header)),
      capacity_(region.size() > sizeof(shm_ring_header) ? region.size() - sizeof(shm_ring_header)
                                                        : 0) {
  if (reinterpret_cast<std::uintptr_t>(region.data()) % alignof(shm_ring_header) != 0)
    throw std::invalid_argument("shm ring: region not aligned");
  if (capacity_ < 64 || !std::has_single_bit(capacity_))
    throw std::invalid_argument("shm ring: capacity not a power of two of at least 64");
}

shm_ring_result shm_ring_writer::write(std::span<const std::byte> bytes) noexcept {
  const std::uint64_t used = head_ - header().tail.load(std::memory_order_acquire);
  // A tail past our head, or more than a ring behind it, is no position the reader can have.
  if (used > capacity()) return {0, true};
  const std::size_t n = std::min<std::size_t>(bytes.size(), capacity() - used);
  if (n == 0) return {};
  copy_in(data(), capacity(), head_, bytes.first(n));
  head_ += n;
  header().head.store(head_, std::memory_order_release);
  return {n, false};
}

bool shm_ring_writer::take_reader_waiting() noexcept {
  return take_flag(header().reader_waiting);
}

bool shm_ring_writer::wait_for_room() noexcept {
  header().writer_waiting.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::uint64_t used = head_ - header().tail.load(std::memory_order_acquire);
  if (used < capacity()) {
    header().writer_waiting.store(0, std::memory_order_relaxed);
    return false;
  }
  return used == capacity();  // beyond: broken, which the next write reports
}

shm_ring_result shm_ring_reader::read(std::span<std::byte> into) noexcept {
  const std::uint64_t available = header().head.load(std::memory_order_acquire) - tail_;
  // A head behind our tail, or more than a ring ahead of it, is no position the writer can have.
  if (available > capacity()) return {0, true};
  const std::size_t n = std::min<std::size_t>(into.size(), available);
  if (n == 0) return {};
  copy_out(data(), capacity(), tail_, into.first(n));
  tail_ += n;
  header().tail.store(tail_, std::memory_order_release);
  return {n, false};
}

std::size_t shm_ring_reader::available() const noexcept {
  const std::uint64_t available = header().head.load(std::memory_order_acquire) - tail_;
  return available > capacity() ? 0 : available;
}

bool shm_ring_reader::take_writer_waiting() noexcept {
  return take_flag(header().writer_waiting);
}

bool shm_ring_reader::wait_for_bytes() noexcept {
  header().reader_waiting.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::uint64_t available = header().head.load(std::memory_order_acquire) - tail_;
  if (available == 0) return true;
  header().reader_waiting.store(0, std::memory_order_relaxed);
  return false;  // bytes, or a broken ring, which the next read reports
}

}  // namespace galaxies::transport
