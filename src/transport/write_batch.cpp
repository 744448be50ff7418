#include "transport/write_batch.hpp"

namespace galaxies::transport {

// Out of line: g++ 12 takes publishing `this` in a thread-local (undone by the destructor) for a
// dangling pointer when it sees both in one caller.
thread_local write_batch* write_batch::current_ = nullptr;

write_batch::write_batch() noexcept : outer_(current_) {
  if (!outer_) current_ = this;
}

write_batch::write_batch(std::span<const std::byte> stable) noexcept : write_batch() {
  if (!outer_) stable_ = stable;
}

write_batch::~write_batch() {
  if (outer_) return;
  current_ = nullptr;
  for (std::size_t i = 0; i < size_; ++i) entries_[i].write(entries_[i].link);
}

}  // namespace galaxies::transport
