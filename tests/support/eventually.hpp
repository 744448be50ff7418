// Waiting in tests: poll a predicate until it holds or a bounded deadline passes. Never a fixed
// sleep.
#pragma once

#include <asio/io_context.hpp>
#include <chrono>
#include <functional>

namespace galaxies::test {

// Returns true as soon as `predicate` holds; false if it still does not after `deadline`.
bool eventually(std::chrono::milliseconds deadline, const std::function<bool()>& predicate,
                std::chrono::milliseconds poll = std::chrono::milliseconds(2));

// Runs `io`'s handlers until `done` holds; false if it still does not after `limit`. With no work
// left in `io` it polls, so `done` may also watch things outside the io_context.
bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit);

}  // namespace galaxies::test
