// Runs coroutines side by side on one executor and waits for all of them: the driver's way of
// having several pairs measure at the same time.
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

namespace galaxies::bench {

// The results in the order of `tasks`. Every task runs to its end (each is bounded by its own
// deadline); then the first exception, if any, is rethrown.
inline asio::awaitable<std::vector<nlohmann::json>> gather(
    std::vector<asio::awaitable<nlohmann::json>> tasks) {
  auto executor = co_await asio::this_coro::executor;
  struct state {
    explicit state(const asio::any_io_executor& ex, std::size_t n)
        : results(n), left(n), done(ex, asio::steady_timer::time_point::max()) {}
    std::vector<nlohmann::json> results;
    std::exception_ptr error;
    std::size_t left;
    asio::steady_timer done;
  };
  auto s = std::make_shared<state>(executor, tasks.size());
  if (tasks.empty()) co_return std::move(s->results);
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    asio::co_spawn(executor, std::move(tasks[i]),
                   [s, i](std::exception_ptr e, nlohmann::json result) {
                     if (e && !s->error) s->error = e;
                     if (!e) s->results[i] = std::move(result);
                     if (--s->left == 0) s->done.cancel();
                   });
  }
  co_await s->done.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  if (s->error) std::rethrow_exception(s->error);
  co_return std::move(s->results);
}

}  // namespace galaxies::bench
