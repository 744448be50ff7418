// Counts the test program's heap allocations, so that a test can assert that a path allocates
// nothing once warm. It replaces the global operator new: include it in exactly one file of a test
// executable (replacement allocation functions cannot be inline).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace galaxies::test {

inline std::atomic<std::size_t> allocation_count{0};

// Allocations made while running `f`.
template <class F>
std::size_t allocations_during(F&& f) {
  const std::size_t before = allocation_count.load();
  f();
  return allocation_count.load() - before;
}

}  // namespace galaxies::test

void* operator new(std::size_t size) {
  galaxies::test::allocation_count.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
