// Waiting in tests: poll a predicate until it holds or a bounded deadline passes. Never a fixed
// sleep.
#pragma once

#include <chrono>
#include <functional>

namespace galaxies::test {

// Returns true as soon as `predicate` holds; false if it still does not after `deadline`.
bool eventually(std::chrono::milliseconds deadline, const std::function<bool()>& predicate,
                std::chrono::milliseconds poll = std::chrono::milliseconds(2));

}  // namespace galaxies::test
