#include "bench_service.hpp"

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <galaxies/json.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

#include "results.hpp"
#include "scale_service.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// The sender yields to the event loop after about this many bytes, so that the link's writer drains
// the queue in large gathered writes while the sender refills it.
constexpr std::size_t send_batch_bytes = 64 * 1024;
constexpr auto min_backoff = 50us;
constexpr auto max_backoff = 2ms;
// Beyond the window, the time the queues in between may take to drain.
constexpr auto control_timeout = 60s;
constexpr auto request_timeout = 5s;

void report_escape(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    std::fprintf(stderr, "galaxies bench worker: %s\n", x.what());
  } catch (...) {
    std::fprintf(stderr, "galaxies bench worker: unknown exception\n");
  }
}

class service : public std::enable_shared_from_this<service> {
 public:
  explicit service(node& n) : node_(n) {}

  void install() {
    auto self = shared_from_this();
    node_.on(cmd_run, [self](const message& m, responder r) { self->on_run(m, std::move(r)); });
    node_.on(cmd_tp_begin,
             [self](const message&, responder r) { self->on_tp_begin(std::move(r)); });
    node_.on(cmd_tp, [self](const message&, responder) { self->on_tp(); });
    node_.on(cmd_tp_end, [self](const message&, responder r) { self->on_tp_end(std::move(r)); });
    node_.on(cmd_echo, [](const message& m, responder r) { r.reply(m.payload); });
  }

 private:
  // ---- receiver ----------------------------------------------------------------------------

  void on_tp_begin(responder r) {
    received_ = 0;
    first_arrival_ = {};
    r.reply("ok");
  }

  void on_tp() {
    if (received_++ == 0) first_arrival_ = clock::now();
  }

  void on_tp_end(responder r) {
    // Every message sent before this request has arrived by now (FIFO per pair) or was dropped:
    // the last one arrived just before this (and not reading the clock per message is cheaper).
    r.reply(end_payload(received_, first_arrival_, clock::now()));
  }

  // Outside the coroutines: g++ 12 miscompiles braced initializer lists inside them ("array used
  // as initializer").
  static std::string end_payload(std::uint64_t arrived, clock::time_point first,
                                 clock::time_point last) {
    return nlohmann::json{
        {"arrived", arrived}, {"first_arrival_ns", to_ns(first)}, {"last_arrival_ns", to_ns(last)}}
        .dump();
  }

  // ---- sender ------------------------------------------------------------------------------

  void on_run(const message& m, responder r) {
    test_spec spec;
    node_id peer;
    try {
      const auto j = parse_json(m.payload);
      spec = j.at("spec").get<test_spec>();
      peer = node_id::parse(j.at("peer").get<std::string>()).value();
    } catch (const std::exception& e) {
      return r.fail(errc::handler_failed, std::string("bad bench.run request: ") + e.what());
    }
    // run() answers the request itself, whatever happens; what could still escape is reported.
    asio::co_spawn(node_.get_executor(), run(spec, peer, std::move(r)), report_escape);
  }

  asio::awaitable<void> run(test_spec spec, node_id peer, responder r) {
    auto self = shared_from_this();  // outlives the handlers' copies while the test runs
    std::string failure;
    try {
      nlohmann::json result;
      if (spec.kind == test_kind::latency)
        result = co_await latency(spec, peer);
      else
        result = co_await throughput(spec, peer);
      r.reply(result.dump());
      co_return;
    } catch (const std::exception& e) {
      failure = e.what();
    }
    r.fail(errc::handler_failed, failure);
  }

  // A control request; a master that refuses it as overloaded (its queue to the receiver is full
  // of measured messages) is asked again.
  asio::awaitable<bytes> control(const node_id& peer, const char* command, std::string payload) {
    asio::steady_timer pause(node_.get_executor());
    const auto give_up = clock::now() + control_timeout;
    for (;;) {
      auto [ec, reply] =
          co_await node_.request(peer, command, as_bytes(payload), control_timeout, use_tuple);
      if (!ec) co_return std::move(reply);
      if (ec != errc::overloaded || clock::now() > give_up)
        throw std::system_error(ec, std::string(command) + ": " + std::string(as_text(reply)));
      pause.expires_after(10ms);
      co_await pause.async_wait(use_tuple);
    }
  }

  // A flood does not ask the receiver anything: it may not be reading, and whoever stopped it
  // counts what arrives.
  asio::awaitable<throughput_result> throughput(const test_spec& spec, const node_id& peer) {
    auto executor = node_.get_executor();
    const bool flood = spec.kind == test_kind::flood;
    if (!flood) co_await control(peer, cmd_tp_begin, {});
    const auto window_end = clock::now() + std::chrono::milliseconds(spec.window_ms);

    throughput_result out;
    out.started_ns = to_ns(clock::now());
    const bytes payload(spec.payload, std::byte{0x5a});
    const std::size_t batch = std::max<std::size_t>(1, send_batch_bytes / (spec.payload + 64));
    asio::steady_timer pause(executor);
    auto backoff = min_backoff;
    while (clock::now() < window_end) {
      bool refused = false;
      for (std::size_t i = 0; i < batch; ++i) {
        const auto ec = node_.send(peer, cmd_tp, payload);
        if (!ec) {
          ++out.sent;
          continue;
        }
        // A flooded receiver its master let go is the flood's end, not the test's failure: what
        // it had accepted is compared with what reached the receiver.
        if (flood && ec == errc::no_such_node) co_return out;
        if (ec != errc::overloaded) throw std::system_error(ec, "send");
        ++out.overloaded;
        refused = true;
        break;
      }
      if (refused && !flood) {
        // As an application would: wait for the receiver's credit, then send on at full speed.
        auto [ec] = co_await node_.async_send(peer, cmd_tp, payload, use_tuple);
        if (ec) throw std::system_error(ec, "async_send");
        ++out.sent;
      } else if (refused) {
        // The flood's receiver may never read again: a waiting send would outlast the test.
        pause.expires_after(backoff);
        co_await pause.async_wait(use_tuple);
        backoff = std::min<std::chrono::microseconds>(backoff * 2, max_backoff);
      } else {
        backoff = min_backoff;
        co_await asio::post(executor, asio::use_awaitable);
      }
    }

    if (flood) co_return out;
    const auto counts = parse_json(co_await control(peer, cmd_tp_end, {}));
    out.arrived = counts.at("arrived").get<std::uint64_t>();
    out.first_arrival_ns = counts.at("first_arrival_ns").get<std::int64_t>();
    out.last_arrival_ns = counts.at("last_arrival_ns").get<std::int64_t>();
    compute_rate(out);
    co_return out;
  }

  // `inflight` coroutines, each with one request outstanding at a time.
  asio::awaitable<latency_result> latency(const test_spec& spec, const node_id& peer) {
    struct shared_state {
      std::vector<std::int64_t> samples;
      std::uint64_t errors = 0;
      int running = 0;
      std::unique_ptr<asio::steady_timer> all_done;
    };
    auto executor = node_.get_executor();
    auto state = std::make_shared<shared_state>();
    state->samples.reserve(1 << 16);
    state->all_done = std::make_unique<asio::steady_timer>(executor, clock::time_point::max());
    const auto payload = std::make_shared<bytes>(spec.payload, std::byte{0x5a});
    const auto start = clock::now();
    const auto deadline = start + std::chrono::milliseconds(spec.window_ms);

    for (int i = 0; i < spec.inflight; ++i) {
      ++state->running;
      asio::co_spawn(
          executor,
          [self = shared_from_this(), state, payload, peer, deadline]() -> asio::awaitable<void> {
            // One clock reading per request, as the tcp and relay clients take: a reply's
            // arrival is the next request's start and the deadline check.
            auto sent_at = clock::now();
            while (sent_at < deadline && state->errors < 1000) {
              auto [ec, reply] = co_await self->node_.request(peer, cmd_echo, *payload,
                                                              request_timeout, use_tuple);
              const auto now = clock::now();
              if (ec) {
                ++state->errors;
              } else {
                state->samples.push_back(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at).count());
              }
              sent_at = now;
            }
          },
          [state](std::exception_ptr e) {
            if (e) ++state->errors;
            if (--state->running == 0) state->all_done->cancel();
          });
    }
    co_await state->all_done->async_wait(use_tuple);
    co_return summarize(state->samples, state->errors, clock::now() - start);
  }

  node& node_;

  // Receiver state for the current throughput test.
  std::uint64_t received_ = 0;
  clock::time_point first_arrival_{};
};

}  // namespace

void install_bench_service(node& n) {
  std::make_shared<service>(n)->install();
  install_scale_service(n);
}

}  // namespace galaxies::bench
