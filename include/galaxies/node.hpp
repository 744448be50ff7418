// The application's handle inside a worker (or an attached external process): messaging and events.
// Threading: a node lives on one executor (its io_context runs on one thread). Every member must be
// called on that executor, and every handler and event callback runs there.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/dispatch.hpp>
#include <asio/execution/executor.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/prefer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "galaxies/counters.hpp"
#include "galaxies/error.hpp"
#include "galaxies/ids.hpp"
#include "galaxies/options.hpp"
#include "galaxies/unique_function.hpp"

namespace galaxies {

using bytes = std::vector<std::byte>;
using byte_view = std::span<const std::byte>;

inline byte_view as_bytes(std::string_view text) noexcept {
  return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}
inline std::string_view as_text(byte_view data) noexcept {
  return {reinterpret_cast<const char*>(data.data()), data.size()};
}

struct node_info {
  node_id id;
  host_id host;
  std::uint32_t pid = 0;
  // The worker slot it fills on `host` (the same across respawns, each a new id); empty for an
  // attached node.
  std::optional<galaxies::slot> slot;
};

struct host_info {
  host_id id;
  std::string address;
};

// A message as a handler sees it; the views are valid only during the handler call.
struct message {
  node_id from;
  std::string_view command;
  byte_view payload;
  bool is_request = false;
  // A request's: when its requester gives up on it (this node's receipt of the request plus the
  // time its requester had left when it sent it; docs/protocol.md §4), so that a handler can give
  // up too. Never earlier than the requester's own deadline. time_point::max() for a send.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::string_view group;  // the group it was published to (node::publish), else empty
};

class node;
namespace detail {
class node_core;

// Keeps a completion handler's executor from running out of work until the completion runs. A
// tracked executor (56 bytes for any_io_executor) rather than an executor_work_guard (120 bytes),
// so that the handler wrapped with it fits unique_function's inline buffer and a request costs no
// allocation for it. Older-style executors, which lack the property, keep a work guard.
template <class Executor>
auto track_work(const Executor& executor) {
  if constexpr (asio::execution::is_executor<Executor>::value)
    return asio::prefer(executor, asio::execution::outstanding_work.tracked);
  else
    return asio::make_work_guard(executor);
}
template <class Executor>
const Executor& executor_of(const Executor& tracked) {
  return tracked;
}
template <class Executor>
Executor executor_of(const asio::executor_work_guard<Executor>& work) {
  return work.get_executor();
}

// Cancels request `id` of `core` (if both are still there) on the node's executor.
void cancel_request(const std::weak_ptr<node_core>& core, std::uint64_t id,
                    asio::cancellation_type_t type);

// What a request installs in its handler's cancellation slot: small (it lives in the slot's
// recycled memory), and harmless once the request has ended or the node has gone.
struct request_canceller {
  std::weak_ptr<node_core> core;
  std::uint64_t id;
  void operator()(asio::cancellation_type_t type) const { cancel_request(core, id, type); }
};
}  // namespace detail

// The way to answer one request. Move-only; answering twice does nothing the second time. A request
// whose responder is destroyed without an answer is answered with errc::handler_failed, so the
// requester never waits for a reply that will not come. For a plain send it is empty.
class responder {
 public:
  responder() = default;
  // Inline: every send's handler gets an empty responder, moved and destroyed per message.
  responder(responder&& other) noexcept
      : core_(std::move(other.core_)), to_(other.to_), request_id_(other.request_id_) {
    other.request_id_ = 0;
  }
  responder& operator=(responder&&) noexcept;
  ~responder() {
    if (pending()) abandon();
  }

  void reply(byte_view payload);
  void reply(std::string_view text) { reply(as_bytes(text)); }
  void fail(errc code, std::string_view text = {});

  // True while a request is waiting for this responder's answer.
  bool pending() const noexcept { return request_id_ != 0; }

 private:
  friend class detail::node_core;
  responder(std::weak_ptr<detail::node_core> core, node_id to, std::uint64_t request_id)
      : core_(std::move(core)), to_(to), request_id_(request_id) {}
  void abandon() noexcept;

  std::weak_ptr<detail::node_core> core_;
  node_id to_;
  std::uint64_t request_id_ = 0;
};

// Handed to node::on_stopping's callback: the node leaves once done() is called, or once the
// drain is destroyed without it (nothing is left to wait for). Move-only; done() twice does
// nothing the second time. Call on the node's executor.
class drain {
 public:
  drain() = default;
  drain(drain&& other) noexcept
      : core_(std::move(other.core_)), deadline_(other.deadline_), pending_(other.pending_) {
    other.pending_ = false;
  }
  drain& operator=(drain&& other) noexcept;
  ~drain() { done(); }

  // The node says goodbye after everything it has queued, and its worker process exits. Posted:
  // the node stops once the caller returns to its executor.
  void done() noexcept;
  // When the master kills this worker if it has not left by then (its options::stop_grace).
  std::chrono::steady_clock::time_point deadline() const noexcept { return deadline_; }
  bool pending() const noexcept { return pending_; }

 private:
  friend class detail::node_core;
  drain(std::weak_ptr<detail::node_core> core, std::chrono::steady_clock::time_point deadline)
      : core_(std::move(core)), deadline_(deadline), pending_(true) {}

  std::weak_ptr<detail::node_core> core_;
  std::chrono::steady_clock::time_point deadline_{};
  bool pending_ = false;
};

using message_handler = std::function<void(const message&, responder)>;
// A request's completion inside the node: the reply's bytes are valid only during the call (each
// form of node::request() puts them where its caller wants them).
using request_callback = detail::unique_function<void(std::error_code, byte_view)>;
using send_callback = detail::unique_function<void(std::error_code)>;

class node {
 public:
  struct attach_options {
    std::string unix_path;  // the master's Unix socket
    std::string cluster;    // must match the master's
    std::uint32_t max_frame_size = 16u << 20;
    std::size_t max_pending_requests = 65536;
    std::size_t max_queue_bytes = 64u << 20;
    heartbeat_options heartbeat{};  // a master silent for heartbeat.detection_time() is gone
  };

  // An external process joining a running master as a node (the CLI and tests do this). Connects
  // asynchronously; on_ready fires once registered, on_disconnected if the master goes or refuses.
  static std::unique_ptr<node> attach(asio::io_context& io, attach_options opts);

  explicit node(std::shared_ptr<detail::node_core> core);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  asio::any_io_executor get_executor() const;

  node_id id() const;
  host_id host() const;  // nil until registered
  // The worker slot this node fills: set once registered, for a worker its master started;
  // empty for an attached node (and before registration).
  std::optional<galaxies::slot> slot() const;
  // The live node (not this one) that fills `s`, if any: "the worker in slot 3 of host B".
  std::optional<node_info> node_in(const galaxies::slot& s) const;
  bool ready() const;                    // registered with the master
  std::vector<node_info> nodes() const;  // every other live node
  std::vector<host_info> hosts() const;  // every live host, this one included
  node_counters counters() const;        // galaxies/counters.hpp
  // Traffic with each live node this node has exchanged messages with (not itself), in no
  // particular order. A node's entry goes when it leaves, so the list never outgrows the cluster.
  std::vector<peer_traffic> peer_counters() const;

  // Handlers for commands; one per command, replacing any earlier one.
  void on(std::string command, message_handler handler);

  // Events. Each replaces an earlier callback of its kind. nodeJoined(X) comes before any message
  // from X, and nodeLeft(X) exactly once, after the last message from X.
  void on_ready(std::function<void()> callback);
  void on_node_joined(std::function<void(const node_info&)> callback);
  void on_node_left(std::function<void(const node_info&, leave_reason, int detail)> callback);
  void on_host_joined(std::function<void(const host_info&)> callback);
  void on_host_left(std::function<void(const host_info&, leave_reason)> callback);
  void on_disconnected(std::function<void(std::error_code, std::string_view why)> callback);
  // Graceful shutdown: when its master stops, a worker is told so and this runs (once). The node
  // works on as before meanwhile, sending and answering; other nodes reach it. When the drain is
  // done (drain::done(), or the drain destroyed), it leaves (nodeLeft `graceful` elsewhere); if it
  // has not by drain::deadline() (options::stop_grace after the master's word), its master kills
  // it (`exited`). Without this callback, a stopping master's worker leaves at once.
  void on_stopping(std::function<void(drain)> callback);

  // Groups (README "Groups", docs/protocol.md §4.3, §5.1): names any node may join, cluster-wide.
  // A group name is 1..64 bytes of UTF-8 without control characters.
  // join/leave may be called any time before stop(); before the node is registered they are
  // remembered and told to the master right after its welcome (so galaxies::run's setup may
  // join). Errors: std::errc::invalid_argument for a bad name; errc::overloaded when this node is
  // in max_groups_per_node groups already, or members(group) holds max_group_members
  // (limits_options, as its master sets them); shutting_down after stop(), not_connected once the
  // master is gone. Joining a group already joined, or leaving one not joined, succeeds and sends
  // nothing. From leave() on, this node handles no publish to the group.
  std::error_code join(std::string_view group);
  std::error_code leave(std::string_view group);
  // The group's members as this node knows them: itself included once its own join came back
  // from its master (on_group_joined tells when). Empty for a group with none.
  std::vector<node_info> members(std::string_view group) const;
  // The groups this node is in by its own calls, in name order.
  std::vector<std::string> groups() const;
  // To every member of `group` this node knows but itself, once each, in order with everything
  // else it sends to each: one frame per host, which that host's master hands to its members.
  // Like broadcast(): overloaded, with nothing sent, unless every member has room; success with
  // nothing sent when the group has no other member; not_connected before ready;
  // std::errc::invalid_argument for an empty command or a bad name; too_large. Handlers see
  // message::group set.
  std::error_code publish(std::string_view group, std::string_view command, byte_view payload);
  // Each member change, exactly once, this node's own included: a member's join before any
  // message it publishes after joining; a node that leaves the cluster leaves each of its groups
  // (one on_group_left each, before its on_node_left, after its last message).
  void on_group_joined(std::function<void(std::string_view group, const node_info&)> callback);
  void on_group_left(std::function<void(std::string_view group, const node_info&)> callback);

  // One-way messages, FIFO per (sender, receiver) pair. A message send() accepts arrives, unless
  // the receiver leaves first (its on_node_left tells). Refused, nothing is sent: no_such_node,
  // too_large, not_connected, or overloaded: the receiver has not granted room for it yet (flow
  // control, docs/protocol.md §4.1) or the channel to the master is full. broadcast() accepts
  // only if every node has room.
  std::error_code send(const node_id& to, std::string_view command, byte_view payload);
  std::error_code broadcast(std::string_view command, byte_view payload);

  // A send that waits for room instead of refusing with overloaded; completes exactly once with
  // an error_code through any Asio completion token: success once the message is accepted (in
  // order with every other message to `to`), or no_such_node, too_large, not_connected, node_left
  // (the receiver left while it waited), shutting_down. The payload is copied at the call.
  template <class CompletionToken>
  auto async_send(const node_id& to, std::string_view command, byte_view payload,
                  CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [this](auto handler, const node_id& to, std::string_view command, byte_view payload) {
          auto work = detail::track_work(asio::get_associated_executor(handler, get_executor()));
          start_send(
              to, command, payload,
              [handler = std::move(handler), work = std::move(work)](std::error_code ec) mutable {
                asio::dispatch(
                    detail::executor_of(work),
                    [handler = std::move(handler), ec]() mutable { std::move(handler)(ec); });
              });
        },
        token, to, command, payload);
  }

  // A request; completes exactly once with (error_code, reply bytes) through any Asio completion
  // token: a callback, asio::use_awaitable, asio::use_future. Without credit to `to` it waits, in
  // order, within its timeout (and its reply waits likewise at the target). When the target leaves,
  // its pending requests complete with errc::node_left first, then on_node_left runs for it.
  // An error the target (or a master) answered with carries its text as the reply bytes.
  //
  // Cancellation: the handler's associated cancellation slot is honoured (a cancellation_signal
  // through asio::bind_cancellation_slot, parallel_group, awaitable operators). Emit it on the
  // node's executor, or on one that runs there. A cancelled request completes once, with
  // asio::error::operation_aborted, and counts as failed_requests.cancelled:
  //  - still waiting for credit (or for room on the channel): any type (terminal, partial, total)
  //    cancels it, and it is never sent;
  //  - sent: terminal or partial cancels it (the target may already be handling it); its reply,
  //    if it comes, is dropped and counted in counters().late_replies. Total alone does nothing.
  // A cancellation after completion does nothing. The slot is cleared before the handler runs.
  template <class CompletionToken>
  auto request(const node_id& to, std::string_view command, byte_view payload,
               std::chrono::milliseconds timeout, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, bytes)>(
        [this](auto handler, const node_id& to, std::string_view command, byte_view payload,
               std::chrono::milliseconds timeout) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          auto work = detail::track_work(asio::get_associated_executor(handler, get_executor()));
          launch_request(to, command, payload, timeout, slot,
                         [handler = std::move(handler), work = std::move(work)](
                             std::error_code ec, byte_view reply) mutable {
                           asio::get_associated_cancellation_slot(handler).clear();
                           asio::dispatch(detail::executor_of(work),
                                          [handler = std::move(handler), ec,
                                           reply = bytes(reply.begin(), reply.end())]() mutable {
                                            std::move(handler)(ec, std::move(reply));
                                          });
                         });
        },
        token, to, command, payload, timeout);
  }

  // The same request with the reply read into the caller's buffer, as asio::async_read reads into
  // a dynamic buffer: completes with (error_code, the reply's size), `reply` resized to the reply
  // (its capacity reused: once it has held the largest reply, a round trip allocates nothing). On
  // an error `reply` holds the answer's text if the target or a master sent one, else is empty.
  // The caller keeps `reply` alive, and leaves it alone, until the completion runs (it is written
  // on the node's executor just before); a second request into the same buffer meanwhile is a bug.
  // Cancellation as above.
  template <class CompletionToken>
  auto request(const node_id& to, std::string_view command, byte_view payload,
               std::chrono::milliseconds timeout, bytes& reply, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [this](auto handler, const node_id& to, std::string_view command, byte_view payload,
               std::chrono::milliseconds timeout, bytes* reply) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          auto work = detail::track_work(asio::get_associated_executor(handler, get_executor()));
          launch_request(to, command, payload, timeout, slot,
                         [handler = std::move(handler), work = std::move(work), reply](
                             std::error_code ec, byte_view answer) mutable {
                           asio::get_associated_cancellation_slot(handler).clear();
                           reply->assign(answer.begin(), answer.end());
                           asio::dispatch(
                               detail::executor_of(work),
                               [handler = std::move(handler), ec, size = answer.size()]() mutable {
                                 std::move(handler)(ec, size);
                               });
                         });
        },
        token, to, command, payload, timeout, &reply);
  }

  // Leaves the cluster: pending requests fail with shutting_down, the connection closes.
  void stop();

 private:
  // Starts a request; its id, or 0 when it was refused at once (`done` then runs soon, posted).
  std::uint64_t start_request(const node_id& to, std::string_view command, byte_view payload,
                              std::chrono::milliseconds timeout, request_callback done);
  // Starts a request and, when its handler has a cancellation slot, installs its canceller there.
  template <class Slot>
  void launch_request(const node_id& to, std::string_view command, byte_view payload,
                      std::chrono::milliseconds timeout, Slot& slot, request_callback done) {
    const std::uint64_t id = start_request(to, command, payload, timeout, std::move(done));
    if (id != 0 && slot.is_connected())
      slot.template emplace<detail::request_canceller>(detail::request_canceller{core_, id});
  }
  void start_send(const node_id& to, std::string_view command, byte_view payload,
                  send_callback done);

  std::shared_ptr<detail::node_core> core_;
};

}  // namespace galaxies
