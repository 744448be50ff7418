// A run of bytes that is never zero-filled. A link's read buffer is written by the socket before
// any of it is read; zeroing it up front touched every page of 64 KiB per link, which cost a
// master 9 % of its CPU while 64 hosts × 8 workers started (bench/RESULTS.md, seventeenth
// session). Untouched, a quiet link's buffer costs one or two pages.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>

namespace galaxies {

class byte_buffer {
 public:
  explicit byte_buffer(std::size_t size)
      : bytes_(std::make_unique_for_overwrite<std::byte[]>(size)), size_(size) {}

  std::byte* data() noexcept { return bytes_.get(); }
  const std::byte* data() const noexcept { return bytes_.get(); }
  std::size_t size() const noexcept { return size_; }

  // Makes it `size` bytes long, with the bytes that were at [keep_begin, keep_end) at its start
  // and nothing else kept: growing copies only what is still unread, not the whole buffer.
  void reallocate(std::size_t size, std::size_t keep_begin, std::size_t keep_end) {
    auto bigger = std::make_unique_for_overwrite<std::byte[]>(size);
    std::copy(bytes_.get() + keep_begin, bytes_.get() + keep_end, bigger.get());
    bytes_ = std::move(bigger);
    size_ = size;
  }

 private:
  std::unique_ptr<std::byte[]> bytes_;
  std::size_t size_;
};

}  // namespace galaxies
