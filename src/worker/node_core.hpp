// The engine behind galaxies::node: the connection to the master, the cluster view, handlers and
// requests in flight. Threading: lives on one executor; every member runs there.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "galaxies/node.hpp"
#include "galaxies/options.hpp"
#include "transport/frame_sink.hpp"
#include "transport/link.hpp"
#include "wire/control.hpp"
#include "worker/flow_credit.hpp"
#include "worker/pending_requests.hpp"

namespace galaxies::detail {

// Heterogeneous lookup: find a handler by the frame's string_view without building a string.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

class node_core : public std::enable_shared_from_this<node_core>, public transport::frame_sink {
 public:
  struct settings {
    wire::role role = wire::role::worker;
    std::string cluster;
    host_id expected_host;  // nil = whichever master is at the other end
    std::uint32_t max_frame_size = limits::default_max_frame_size;
    std::size_t max_pending_requests = limits::default_max_pending_requests;
    std::size_t max_queue_bytes = limits::default_max_queue_bytes;
    heartbeat_options heartbeat;  // on the channel to the master: a silent master means gone
    // How long the master's process has waited for a core so far, when it is known (a spawned
    // worker's parent): the handshake deadline and the master's silences forgive that wait
    // (transport::basic_link::forgive_peer_cpu_wait). Empty: nothing is forgiven.
    std::function<std::optional<std::chrono::nanoseconds>()> master_cpu_wait;
  };

  struct callbacks {
    std::function<void()> ready;
    std::function<void(const node_info&)> node_joined;
    std::function<void(const node_info&, leave_reason, int)> node_left;
    std::function<void(const host_info&)> host_joined;
    std::function<void(const host_info&, leave_reason)> host_left;
    std::function<void(std::string_view, const node_info&)> group_joined;
    std::function<void(std::string_view, const node_info&)> group_left;
    std::function<void(std::error_code, std::string_view)> disconnected;
    std::function<void(drain)> stopping;
    // For the runtime, never replaced by the application: after `disconnected`, and (after a
    // graceful stop) once the goodbye is written and the connection closed.
    std::function<void(std::error_code)> ended;
    std::function<void()> link_closed;
  };

  node_core(const asio::any_io_executor& executor, settings s);
  ~node_core() override;

  // Takes the connected socket to the master and starts the handshake.
  void connect(transport::stream stream);
  void connect(transport::socket socket) { connect(transport::stream(std::move(socket))); }
  void stop();

  const asio::any_io_executor& executor() const noexcept { return executor_; }
  const node_id& id() const noexcept { return self_; }
  const host_id& host() const noexcept { return host_; }
  bool ready() const noexcept { return state_ == state::ready; }
  std::optional<galaxies::slot> slot() const;
  std::optional<node_info> node_in(const galaxies::slot& s) const;
  std::vector<node_info> nodes() const;
  std::vector<host_info> hosts() const;
  node_counters counters() const;
  std::vector<peer_traffic> peer_counters() const;
  callbacks& events() noexcept { return callbacks_; }

  void set_handler(std::string command, message_handler handler);

  std::error_code send(const node_id& to, std::string_view command, byte_view payload);
  std::error_code broadcast(std::string_view command, byte_view payload);
  // A send that waits for credit instead of refusing: `done` runs (posted) once the message is
  // accepted, or with the reason it never will be.
  void start_send(const node_id& to, std::string_view command, byte_view payload,
                  send_callback done);
  // Its id, or 0 when refused at once (`done` then runs soon, posted).
  std::uint64_t start_request(const node_id& to, std::string_view command, byte_view payload,
                              std::chrono::milliseconds timeout, request_callback done);
  // A request's cancellation slot fired (galaxies::node::request() says what each type does).
  void cancel_request(std::uint64_t id, asio::cancellation_type_t type);
  void send_reply(const node_id& to, std::uint64_t request_id, errc status, byte_view payload);

  // Groups (node_groups.cpp, docs/protocol.md §4.3, §5.1); see galaxies::node.
  std::error_code join(std::string_view group);
  std::error_code leave(std::string_view group);
  std::vector<node_info> members(std::string_view group) const;
  std::vector<std::string> groups() const;
  std::error_code publish(std::string_view group, std::string_view command, byte_view payload);

  // transport::frame_sink
  void on_frame(const wire::frame_view& frame) override;
  void on_closed(transport::close_reason reason, std::error_code error) override;
  void on_drained() override;

 private:
  enum class state { idle, handshaking, registered, ready, closed };
  using handler_map =
      std::unordered_map<std::string, message_handler, string_hash, std::equal_to<>>;

  // A frame that waits for credit to its receiver (or for room on the channel), in order.
  struct waiting_frame {
    std::vector<std::byte> frame;  // encoded; its flags are set when it goes
    std::uint64_t request_id = 0;  // a request: dropped if it ended meanwhile
    send_callback done;            // async_send: told when it goes, or why it never will
    wire::frame_type type;         // for the peer's traffic counts, once it goes
    std::size_t payload_size = 0;
  };

  // A frame admitted to go now: the receiver's credit state (debited; where its traffic is
  // counted) and the flags the frame must carry. Empty when not admitted.
  struct admission {
    send_credit::pair* credit = nullptr;
    std::uint8_t flags = 0;
    explicit operator bool() const noexcept { return credit != nullptr; }
  };

  // Whether a message of `frame_size` bytes can be sent at all (state, size limits).
  std::error_code check_sendable(std::string_view command, std::size_t frame_size) const;
  // The same for a send or request to `to`: a command, and a node we know.
  std::error_code check_message(const node_id& to, std::string_view command,
                                std::size_t frame_size) const;
  // Whether a frame for `to` can go now: nothing waits for `to`, the channel and its credit have
  // room. If so the credit is debited and the admission returned; if the credit is what lacks,
  // the pair is marked blocked.
  // `credit`: the pair's state when the caller has it already.
  admission admit(const node_id& to, std::size_t frame_size, send_credit::pair* credit = nullptr);
  // Admits and appends a send to `to`: into the batch still open for `to` at the end of the
  // channel's queue (protocol.md §4.2), or as a frame of its own. False, with nothing appended,
  // when the credit or the channel lacks room.
  bool try_send(const node_id& to, std::string_view command, byte_view payload,
                std::size_t frame_size);
  // Appends an admitted message frame to the channel.
  void emit(wire::frame_type type, const node_id& to, std::uint64_t id, std::uint32_t word,
            std::string_view command, byte_view payload, admission admitted);
  // Encodes a message frame to wait for `to`'s credit, behind any already waiting.
  void wait_for_credit(wire::frame_type type, const node_id& to, std::uint64_t id,
                       std::uint32_t word, std::string_view command, byte_view payload,
                       send_callback done);
  // Sends what waits for `to`, in order, as far as its credit and the channel allow.
  void flush_waiting(const node_id& to);
  void sweep_ended_requests();
  void forget_peer(const node_id& id);
  void fail_soon(request_callback done, std::error_code error);
  // A request refused before it got an id: counted as failed, then failed.
  void refuse(request_callback done, std::error_code error);
  void fail_soon(send_callback done, std::error_code error);
  void on_credit(const wire::frame_view& frame);
  // The frame from `from` has been handled: grants `from` more credit when it is due. `credit`:
  // receive_credit_'s state for `from`.
  void consumed(const wire::frame_view& frame, receive_credit::pair& credit, const node_id& from);
  void on_handshake_frame(const wire::frame_view& frame);
  void on_message(const wire::frame_view& frame);
  void on_batch(const wire::frame_view& frame);
  // Runs `handler`, the command's (a request is answered no_handler when it is end()).
  void dispatch(const node_id& from, handler_map::iterator handler, std::string_view command,
                byte_view payload, std::uint64_t request_id,
                std::chrono::steady_clock::time_point deadline, std::string_view group = {});
  void on_nodes_up(const wire::frame_view& frame);
  void on_nodes_down(const wire::frame_view& frame);
  void on_hosts_up(const wire::frame_view& frame);
  void on_hosts_down(const wire::frame_view& frame);
  void on_stopping(const wire::frame_view& frame);
  void on_groups_up(const wire::frame_view& frame);
  void on_groups_down(const wire::frame_view& frame);
  void on_publish(const wire::frame_view& frame);
  // Tells the master of own group changes (groups_up or groups_down), in frames within max_frame.
  void announce_own(wire::frame_type type, std::span<const std::string> groups);
  // The joins made before the welcome, told now; the limits the welcome names taken.
  void registered(const std::optional<wire::group_limits>& limits);
  // `node` left the cluster (or this node lost it): one group_left per group it was in.
  void leave_all_groups(const node_info& node);
  node_info self_info() const;
  void protocol_error(std::string_view what);
  void disconnect(std::error_code error, std::string_view why, bool graceful = false);

  asio::any_io_executor executor_;
  settings settings_;
  node_id self_ = node_id::random();
  host_id host_;
  state state_ = state::idle;
  std::shared_ptr<transport::link> link_;
  pending_requests pending_;
  send_credit send_credit_{limits::default_flow_window};
  receive_credit receive_credit_{limits::default_flow_window, 0};
  std::unordered_map<node_id, std::deque<waiting_frame>> waiting_;
  // The send (or send_batch) last appended to the channel's queue, which later sends to the same
  // node join while it is still the queue's last frame, in the same write round.
  struct open_batch {
    std::uint64_t round = 0;  // link::outbound_round() when it was appended
    std::size_t start = 0;    // where it lies in link::outbound()
    std::size_t end = 0;
    node_id to;                 // a node we know: the batch closes when it leaves
    send_credit::pair* credit;  // send_credit_'s state for `to`
  };
  std::optional<open_batch> batch_;
  // Requests among the waiting frames, timed out or not: when most of them have ended, a sweep
  // drops those, so a receiver that never grants cannot make expired requests pile up.
  std::size_t waiting_requests_ = 0;
  std::unordered_map<node_id, node_info> nodes_;
  // Which live node fills each slot: at most one (protocol.md §5), found by node_in().
  std::unordered_map<galaxies::slot, node_id> slots_;
  std::optional<std::uint32_t> slot_;  // ours, from the welcome (workers only)
  bool told_stopping_ = false;
  std::unordered_map<host_id, host_info> hosts_;
  // Groups as the master told them (this node's own once its join came back), each node's groups
  // (for its departure), and the groups this node is in by its own calls: what it handles.
  std::unordered_map<std::string, std::unordered_set<node_id>, string_hash, std::equal_to<>>
      group_members_;
  std::unordered_map<node_id, std::vector<std::string>> node_groups_;
  std::set<std::string, std::less<>> own_groups_;
  std::size_t max_groups_ = limits_options{}.max_groups_per_node;
  std::size_t max_group_members_ = limits_options{}.max_group_members;
  bool nodes_snapshot_ = false;  // the nodes_up snapshot came: ready with the groups_up one
  bool stopped_ = false;         // stop() was called: join/leave say shutting_down
  // publish(): the receivers by host, reused from call to call.
  std::vector<std::pair<host_id, std::vector<node_id>>> publish_hosts_;
  handler_map handlers_;
  std::uint64_t handlers_changed_ = 0;  // counts set_handler(): a handler found before may be stale
  callbacks callbacks_;
  node_counters counters_;
  std::string disconnect_reason_;
};

}  // namespace galaxies::detail
