// Replaces the program's global operator new to count allocations, so a test can assert that a
// code path makes none. It defines the operators: include it in exactly one file of a test
// program, and only in programs not run under valgrind's memcheck (which substitutes operator new
// for some calls and then reports our delete as a mismatched free).
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
