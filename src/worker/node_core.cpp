#include "worker/node_core.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <chrono>

#include "base/text.hpp"
#include "wire/credit.hpp"
#include "wire/message.hpp"
#include "wire/message_batch.hpp"

namespace galaxies::detail {
namespace {

// A request frame's word: its timeout in whole milliseconds, rounded up (so that the target's
// deadline is never earlier than the requester's), within 32 bits.
std::uint32_t timeout_word(std::chrono::steady_clock::duration timeout) {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(ms, 0, UINT32_MAX));
}

void count_sent(send_credit::pair& credit, wire::frame_type type, std::size_t payload_size) {
  ++credit.sent.messages;
  credit.sent.bytes += payload_size;
  if (type == wire::frame_type::request) ++credit.sent.requests;
}

}  // namespace

node_core::node_core(const asio::any_io_executor& executor, settings s)
    : executor_(executor),
      settings_(std::move(s)),
      pending_(executor, settings_.max_pending_requests) {}

node_core::~node_core() {
  if (link_) {
    link_->detach();
    // A link closing after a graceful stop still has the goodbye to write (node::~node stops
    // first); its own coroutines keep it alive until then, bounded by close_after_flush.
    if (link_->writable()) link_->close(transport::close_reason::local);
  }
}

void node_core::connect(transport::stream stream) {
  transport::link_settings ls;
  ls.max_frame_size = std::min(limits::handshake_max_frame_size, settings_.max_frame_size);
  ls.max_queue_bytes = settings_.max_queue_bytes;
  ls.health = std::make_shared<transport::local_health>(
      transport::local_health_settings::bounded_by(settings_.heartbeat.max_stretch));
  ls.name = "master channel of node " + self_.to_string().substr(0, 8);
  link_ = std::make_shared<transport::link>(std::move(stream), std::move(ls));
  if (settings_.master_cpu_wait) link_->forgive_peer_cpu_wait(settings_.master_cpu_wait);

  wire::hello h;
  h.role = settings_.role;
  h.sender = self_.value();
  h.target = settings_.expected_host.value();
  h.pid = static_cast<std::uint32_t>(::getpid());
  h.cluster = settings_.cluster;
  h.max_frame = settings_.max_frame_size;
  // This node speaks flow control; the master's welcome names the cluster's window and our budget.
  h.flow_window = limits::default_flow_window;
  if (settings_.heartbeat.interval.count() > 0) {
    h.heartbeat_ms = static_cast<std::uint32_t>(settings_.heartbeat.interval.count());
    // A master starved of CPU says so, and is waited for (protocol.md §8.1), that far at most.
    h.lateness = static_cast<std::uint32_t>(std::max(settings_.heartbeat.max_stretch, 1));
  }
  wire::append_hello(link_->outbound(), h);
  state_ = state::handshaking;
  link_->start(this);
  link_->expire_after(limits::handshake_timeout, transport::close_reason::handshake_timeout);
  link_->flush();
}

void node_core::stop() {
  stopped_ = true;
  if (state_ == state::closed) return;
  disconnect(make_error_code(errc::shutting_down), "stopped", true);
}

std::vector<node_info> node_core::nodes() const {
  std::vector<node_info> out;
  out.reserve(nodes_.size());
  for (const auto& [id, info] : nodes_) out.push_back(info);
  return out;
}

std::optional<galaxies::slot> node_core::slot() const {
  if (!slot_ || host_.is_nil()) return std::nullopt;
  return galaxies::slot{host_, *slot_};
}

std::optional<node_info> node_core::node_in(const galaxies::slot& s) const {
  const auto it = slots_.find(s);
  if (it == slots_.end()) return std::nullopt;
  return nodes_.at(it->second);
}

std::vector<host_info> node_core::hosts() const {
  std::vector<host_info> out;
  out.reserve(hosts_.size());
  for (const auto& [id, info] : hosts_) out.push_back(info);
  return out;
}

node_counters node_core::counters() const {
  node_counters out = counters_;
  out.request_latency = pending_.outcomes().latency;
  out.failed_requests = pending_.outcomes().failed;
  return out;
}

std::vector<peer_traffic> node_core::peer_counters() const {
  // Sent and received counts live in separate credit tables (each side's own); both forget a
  // node when it leaves.
  std::unordered_map<node_id, peer_traffic> merged;
  for (const auto& [id, credit] : send_credit_.pairs()) {
    if (id == self_ || credit.sent.messages == 0) continue;
    auto& t = merged[id];
    t.messages_sent = credit.sent.messages;
    t.bytes_sent = credit.sent.bytes;
    t.requests_sent = credit.sent.requests;
  }
  for (const auto& [id, credit] : receive_credit_.pairs()) {
    if (id == self_ || credit.received.messages == 0) continue;
    auto& t = merged[id];
    t.messages_received = credit.received.messages;
    t.bytes_received = credit.received.bytes;
    t.replies_received = credit.received.replies;
  }
  std::vector<peer_traffic> out;
  out.reserve(merged.size());
  for (auto& [id, t] : merged) {
    t.node = id;
    out.push_back(t);
  }
  return out;
}

void node_core::set_handler(std::string command, message_handler handler) {
  handlers_[std::move(command)] = std::move(handler);
  ++handlers_changed_;
}

std::error_code node_core::check_sendable(std::string_view command, std::size_t frame_size) const {
  if (state_ != state::ready && state_ != state::registered) return errc::not_connected;
  if (command.size() > limits::max_command_size || frame_size > link_->max_frame_size())
    return errc::too_large;
  return {};
}

std::error_code node_core::check_message(const node_id& to, std::string_view command,
                                         std::size_t frame_size) const {
  if (auto ec = check_sendable(command, frame_size)) return ec;
  if (command.empty()) return std::make_error_code(std::errc::invalid_argument);
  // The node of the open batch is known: the batch closes when it leaves.
  if (to != self_ && !(batch_ && batch_->to == to) && !nodes_.contains(to))
    return errc::no_such_node;
  return {};
}

node_core::admission node_core::admit(const node_id& to, std::size_t frame_size,
                                      send_credit::pair* credit) {
  if (!waiting_.empty() && waiting_.contains(to)) return {};
  if (!link_->has_room(frame_size)) return {};
  auto& pair = credit ? *credit : send_credit_.at(to);
  const auto flags = send_credit_.try_take(pair, frame_size);
  return flags ? admission{&pair, *flags} : admission{};
}

void node_core::emit(wire::frame_type type, const node_id& to, std::uint64_t id, std::uint32_t word,
                     std::string_view command, byte_view payload, admission admitted) {
  // check_sendable has bounded the command and the frame, so encoding cannot fail.
  wire::append_message(link_->outbound(), type, self_, to, id, word, command, payload,
                       link_->max_frame_size(), admitted.flags);
  link_->flush();
  ++counters_.sent;
  count_sent(*admitted.credit, type, payload.size());
  if (type == wire::frame_type::request) pending_.mark_sent(id);
}

bool node_core::try_send(const node_id& to, std::string_view command, byte_view payload,
                         std::size_t frame_size) {
  auto& out = link_->outbound();
  if (batch_ && batch_->to == to && batch_->end == out.size() &&
      batch_->round == link_->outbound_round()) {
    const auto frame = std::span<const std::byte>(out).subspan(batch_->start);
    const std::size_t growth = wire::batch_growth(frame, command.size(), payload.size());
    if (frame.size() + growth <=
        std::min<std::size_t>(limits::max_batch_bytes, link_->max_frame_size())) {
      const auto admitted = admit(to, growth, batch_->credit);
      if (!admitted) return false;
      wire::append_to_batch(out, batch_->start, command, payload, admitted.flags);
      batch_->end = out.size();
      link_->flush();
      ++counters_.sent;
      count_sent(*admitted.credit, wire::frame_type::send, payload.size());
      return true;
    }
  }
  const auto admitted = admit(to, frame_size);
  if (!admitted) return false;
  const std::size_t start = out.size();
  const std::uint64_t round = link_->outbound_round();
  emit(wire::frame_type::send, to, 0, 0, command, payload, admitted);
  if (link_->outbound_round() == round)
    batch_ = open_batch{round, start, out.size(), to, admitted.credit};
  return true;
}

void node_core::wait_for_credit(wire::frame_type type, const node_id& to, std::uint64_t id,
                                std::uint32_t word, std::string_view command, byte_view payload,
                                send_callback done) {
  if (type == wire::frame_type::request && ++waiting_requests_ > 2 * pending_.size() + 64)
    sweep_ended_requests();
  waiting_frame w{
      {}, type == wire::frame_type::request ? id : 0, std::move(done), type, payload.size()};
  wire::append_message(w.frame, type, self_, to, id, word, command, payload,
                       link_->max_frame_size());
  waiting_[to].push_back(std::move(w));
  // Whatever holds it back (credit or the channel), the next chance to send it is a grant or a
  // drained channel; a grant flushes on arrival, the channel says when it drained.
  link_->notify_drained_below(settings_.max_queue_bytes / 2);
}

void node_core::flush_waiting(const node_id& to) {
  const auto it = waiting_.find(to);
  if (it == waiting_.end() || state_ == state::closed) return;
  auto& queue = it->second;
  auto& credit = send_credit_.at(to);
  bool wrote = false;
  while (!queue.empty()) {
    auto& w = queue.front();
    if (w.request_id != 0 && !pending_.contains(w.request_id)) {
      --waiting_requests_;
      queue.pop_front();  // timed out while it waited: nobody expects its reply
      continue;
    }
    if (!send_credit_.admits(credit, w.frame.size())) {
      credit.blocked = true;
      break;
    }
    if (!link_->has_room(w.frame.size())) {
      link_->notify_drained_below(settings_.max_queue_bytes / 2);
      break;
    }
    w.frame[5] = std::byte{send_credit_.take(credit, w.frame.size())};  // the header's flags
    // A request says how long its requester still waits for it: what is left now, not what it
    // was given (protocol.md §4).
    if (w.request_id != 0)
      wire::poke_word(
          w.frame, timeout_word(pending_.deadline(w.request_id) - pending_requests::clock::now()));
    auto& out = link_->outbound();
    out.insert(out.end(), w.frame.begin(), w.frame.end());
    wrote = true;
    ++counters_.sent;
    count_sent(credit, w.type, w.payload_size);
    if (w.request_id != 0) {
      --waiting_requests_;
      pending_.mark_sent(w.request_id);
    }
    if (w.done) fail_soon(std::move(w.done), {});
    queue.pop_front();
  }
  if (queue.empty()) waiting_.erase(it);
  if (wrote) link_->flush();
}

void node_core::sweep_ended_requests() {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    std::erase_if(it->second, [&](const waiting_frame& w) {
      const bool ended = w.request_id != 0 && !pending_.contains(w.request_id);
      if (ended) --waiting_requests_;
      return ended;
    });
    it = it->second.empty() ? waiting_.erase(it) : std::next(it);
  }
}

void node_core::on_drained() {
  std::vector<node_id> targets;
  targets.reserve(waiting_.size());
  for (const auto& [to, queue] : waiting_) targets.push_back(to);
  for (const auto& to : targets) flush_waiting(to);
}

std::error_code node_core::send(const node_id& to, std::string_view command, byte_view payload) {
  const std::size_t size = wire::message_frame_size(command.size(), payload.size());
  if (auto ec = check_message(to, command, size)) return ec;
  return try_send(to, command, payload, size) ? std::error_code{} : errc::overloaded;
}

std::error_code node_core::broadcast(std::string_view command, byte_view payload) {
  const std::size_t size = wire::message_frame_size(command.size(), payload.size());
  if (auto ec = check_sendable(command, size)) return ec;
  if (command.empty()) return std::make_error_code(std::errc::invalid_argument);
  // One frame, one copy for every other node: each must have room, or nobody gets it.
  bool admitted = link_->has_room(size);
  for (const auto& [id, info] : nodes_) {
    if (waiting_.contains(id) || !send_credit_.admits(id, size)) {
      send_credit_.mark_blocked(id);
      admitted = false;
    }
  }
  if (!admitted) return errc::overloaded;
  std::uint8_t flags = 0;
  for (const auto& [id, info] : nodes_) {
    auto& credit = send_credit_.at(id);
    flags |= send_credit_.take(credit, size);
    count_sent(credit, wire::frame_type::broadcast, payload.size());
  }
  wire::append_message(link_->outbound(), wire::frame_type::broadcast, self_, node_id{}, 0, 0,
                       command, payload, link_->max_frame_size(), flags);
  link_->flush();
  ++counters_.sent;
  return {};
}

void node_core::fail_soon(request_callback done, std::error_code error) {
  // Never complete inside the initiating call: callers may hold locks or iterators.
  asio::post(executor_, [done = std::move(done), error]() mutable { done(error, {}); });
}

void node_core::fail_soon(send_callback done, std::error_code error) {
  asio::post(executor_, [done = std::move(done), error]() mutable { done(error); });
}

void node_core::refuse(request_callback done, std::error_code error) {
  pending_.count_refused(error);
  fail_soon(std::move(done), error);
}

void node_core::start_send(const node_id& to, std::string_view command, byte_view payload,
                           send_callback done) {
  const std::size_t size = wire::message_frame_size(command.size(), payload.size());
  if (auto ec = check_message(to, command, size)) return fail_soon(std::move(done), ec);
  if (!try_send(to, command, payload, size))
    return wait_for_credit(wire::frame_type::send, to, 0, 0, command, payload, std::move(done));
  fail_soon(std::move(done), {});
}

std::uint64_t node_core::start_request(const node_id& to, std::string_view command,
                                       byte_view payload, std::chrono::milliseconds timeout,
                                       request_callback done) {
  const std::size_t size = wire::message_frame_size(command.size(), payload.size());
  if (auto ec = check_message(to, command, size)) {
    refuse(std::move(done), ec);
    return 0;
  }

  const auto now = pending_requests::clock::now();
  const std::uint64_t id =
      pending_.add(to, now, now + timeout, done, static_cast<std::uint32_t>(size));
  if (id == 0) {
    refuse(std::move(done), errc::overloaded);
    return 0;
  }
  // Without credit it waits, within its deadline (the pending table times it out meanwhile).
  const auto admitted = admit(to, size);
  if (!admitted)
    wait_for_credit(wire::frame_type::request, to, id, timeout_word(timeout), command, payload, {});
  else
    emit(wire::frame_type::request, to, id, timeout_word(timeout), command, payload, admitted);
  return id;
}

void node_core::cancel_request(std::uint64_t id, asio::cancellation_type_t type) {
  const node_id* target = pending_.awaited_target(id);
  if (!target) return;  // ended, or cancelled already
  const node_id to = *target;
  // Not sent yet: any cancellation takes it back, and it is never sent.
  if (const auto it = waiting_.find(to); it != waiting_.end()) {
    auto& queue = it->second;
    const auto w = std::find_if(queue.begin(), queue.end(),
                                [id](const waiting_frame& f) { return f.request_id == id; });
    if (w != queue.end()) {
      queue.erase(w);
      --waiting_requests_;
      fail_soon(pending_.cancel(id, false), asio::error::operation_aborted);
      // What waited behind it may fit now (and an empty queue goes).
      return flush_waiting(to);
    }
  }
  // Sent: the target may be handling it already, a side effect total cancellation rules out.
  using asio::cancellation_type;
  if ((type & (cancellation_type::terminal | cancellation_type::partial)) ==
      cancellation_type::none)
    return;
  fail_soon(pending_.cancel(id, true), asio::error::operation_aborted);
}

void node_core::send_reply(const node_id& to, std::uint64_t request_id, errc status,
                           byte_view payload) {
  if (state_ == state::closed) return;
  const auto word = static_cast<std::uint32_t>(status);
  const std::size_t size = wire::message_frame_size(0, payload.size());
  if (auto ec = check_sendable({}, size)) {
    // Too large: answer with the reason instead, which is small, so that the requester learns
    // why rather than timing out.
    if (ec != errc::too_large) return;
    const std::string_view why = "reply too large to send";
    return send_reply(to, request_id, status == errc::ok ? errc::too_large : status, as_bytes(why));
  }
  // A requester that left is owed nothing. Checked so that no state is made for it again (its
  // credit pair, which holds its peer counts, went when it left): a pair exists only for a live
  // node, so the usual case costs no lookup beyond the pair's own.
  auto* credit = send_credit_.find(to);
  if (!credit && to != self_ && !nodes_.contains(to)) return;
  // A reply waits for credit like any message; its requester leaving drops it. (What waits is
  // bounded by the requests the requester could send: they took its credit towards us.)
  const auto admitted = admit(to, size, credit);
  if (!admitted)
    return wait_for_credit(wire::frame_type::reply, to, request_id, word, {}, payload, {});
  emit(wire::frame_type::reply, to, request_id, word, {}, payload, admitted);
}

void node_core::on_frame(const wire::frame_view& frame) {
  using wire::frame_type;
  if (state_ == state::handshaking) return on_handshake_frame(frame);
  switch (frame.header.type) {
    case frame_type::send:
    case frame_type::request:
    case frame_type::reply:
    case frame_type::broadcast:
      return on_message(frame);
    case frame_type::send_batch:
      return on_batch(frame);
    case frame_type::publish:
      return on_publish(frame);
    case frame_type::credit:
      return on_credit(frame);
    case frame_type::nodes_up:
      return on_nodes_up(frame);
    case frame_type::nodes_down:
      return on_nodes_down(frame);
    case frame_type::hosts_up:
      return on_hosts_up(frame);
    case frame_type::hosts_down:
      return on_hosts_down(frame);
    case frame_type::stopping:
      return on_stopping(frame);
    case frame_type::groups_up:
      return on_groups_up(frame);
    case frame_type::groups_down:
      return on_groups_down(frame);
    case frame_type::goodbye:
      return disconnect(make_error_code(errc::node_left), "the master is stopping");
    default:
      return protocol_error(wire::to_string(frame.header.type));
  }
}

void node_core::on_handshake_frame(const wire::frame_view& frame) {
  if (frame.header.type == wire::frame_type::refuse) {
    wire::refuse r;
    if (wire::decode_refuse(frame, r)) return protocol_error("malformed refuse");
    spdlog::error("the master refused this node: {}: {}", wire::to_string(r.code),
                  base::printable(r.text, limits::max_refuse_text));
    return disconnect(make_error_code(errc::not_connected),
                      std::string("refused: ") + wire::to_string(r.code) + ": " +
                          base::printable(r.text, limits::max_refuse_text));
  }
  if (frame.header.type != wire::frame_type::welcome) return protocol_error("expected welcome");
  wire::welcome w;
  if (wire::decode_welcome(frame, w) || w.version != wire::protocol_version)
    return protocol_error("malformed welcome");
  // Every pair in the cluster starts with the same window, which only the master can tell us.
  if (!w.flow_window || !w.flow_budget) return protocol_error("welcome without flow control");
  send_credit_ = send_credit(*w.flow_window);
  receive_credit_ = receive_credit(*w.flow_window, *w.flow_budget);
  link_->set_max_frame_size(
      std::min(w.max_frame.value_or(settings_.max_frame_size), settings_.max_frame_size));
  host_ = w.host;
  slot_ = w.slot;
  link_->cancel_expiry();
  // Both sides advertised an interval: each sends at the smaller one, and each judges silence by
  // its own detection time. A master that stops answering is then noticed even when its socket
  // stays open (SIGSTOP, a hung machine behind a live kernel).
  if (const auto ours = settings_.heartbeat.interval;
      ours.count() > 0 && w.heartbeat_ms.value_or(0))
    link_->enable_heartbeats(std::min(ours, std::chrono::milliseconds(*w.heartbeat_ms)),
                             settings_.heartbeat.detection_time(), w.lateness.value_or(0));
  state_ = state::registered;
  registered(w.group_limits);
}

void node_core::on_message(const wire::frame_view& frame) {
  wire::message_view m;
  if (wire::decode_message(frame, m)) return protocol_error("malformed message");
  ++counters_.received;
  if (m.type == wire::frame_type::reply) {
    const auto status = static_cast<errc>(m.word);
    std::error_code ec = status == errc::ok ? std::error_code{} : make_error_code(status);
    // A master answered for the target: our request never reached it, so its bytes come back to
    // our credit, and nobody is owed any for this reply. Nor is it traffic with the target.
    if (frame.header.flags & wire::flag_from_master) {
      send_credit_.refund(m.src, pending_.master_answered(m.src, m.request_id));
      if (!pending_.complete_reply(m.src, m.request_id, ec, m.payload,
                                   pending_requests::answered_by::master))
        ++counters_.late_replies;
      return;
    }
    // Counted before the request's callback runs, as its round trip is.
    auto& credit = receive_credit_.at(m.src);
    ++credit.received.messages;
    credit.received.bytes += m.payload.size();
    ++credit.received.replies;
    if (!pending_.complete_reply(m.src, m.request_id, ec, m.payload)) {
      ++counters_.late_replies;
      pending_.answered_late(m.request_id);
    }
    return consumed(frame, credit, m.src);
  }
  auto& credit = receive_credit_.at(m.src);
  ++credit.received.messages;
  credit.received.bytes += m.payload.size();
  if (m.type == wire::frame_type::request)
    dispatch(m.src, handlers_.find(m.command), m.command, m.payload, m.request_id,
             std::chrono::steady_clock::now() + std::chrono::milliseconds(m.word));
  else
    dispatch(m.src, handlers_.find(m.command), m.command, m.payload, 0,
             std::chrono::steady_clock::time_point::max());
  consumed(frame, credit, m.src);
}

void node_core::on_batch(const wire::frame_view& frame) {
  if (wire::check_batch(frame) || wire::peek_dst(frame) != self_)
    return protocol_error("malformed send_batch");
  const node_id from = wire::peek_src(frame);
  auto& credit = receive_credit_.at(from);
  wire::batch_reader messages(frame);
  std::string_view command;
  byte_view payload;
  // A run of messages of one command looks its handler up once, unless a handler changed them.
  auto handler = handlers_.end();
  std::string_view looked_up;
  std::uint64_t looked_up_when = handlers_changed_;
  while (messages.next(command, payload)) {
    ++counters_.received;
    ++credit.received.messages;
    credit.received.bytes += payload.size();
    if (command != looked_up || looked_up_when != handlers_changed_) {
      handler = handlers_.find(command);
      looked_up = command;
      looked_up_when = handlers_changed_;
    }
    dispatch(from, handler, command, payload, 0, std::chrono::steady_clock::time_point::max());
    // A handler stopped this node: what follows is not delivered, as later frames would not be.
    if (state_ == state::closed) return;
  }
  consumed(frame, credit, from);
}

void node_core::dispatch(const node_id& from, handler_map::iterator it, std::string_view command,
                         byte_view payload, std::uint64_t request_id,
                         std::chrono::steady_clock::time_point deadline, std::string_view group) {
  const bool is_request = request_id != 0;
  if (it == handlers_.end()) {
    if (is_request)
      send_reply(from, request_id, errc::no_handler, as_bytes(command));
    else
      ++counters_.unhandled;
    return;
  }
  const message msg{from, command, payload, is_request, deadline, group};
  responder r = is_request ? responder(weak_from_this(), from, request_id) : responder();
  try {
    it->second(msg, std::move(r));
  } catch (const std::exception& e) {
    // The responder, if not yet used, answered handler_failed as the exception unwound.
    spdlog::error("handler for '{}' threw: {}", base::printable(command),
                  base::printable(e.what(), 200));
  }
}

void node_core::consumed(const wire::frame_view& frame, receive_credit::pair& credit,
                         const node_id& from) {
  // The handler may have stopped this node: no grant then, and `credit` is gone with the rest of
  // the table. (Its sender cannot have left: a nodes_down follows the sender's last frame, and is
  // handled after this one.)
  if (state_ == state::closed) return;
  const bool blocked = (frame.header.flags & wire::flag_blocked) != 0;
  if (auto grant = receive_credit_.consumed(credit, self_, from, frame.bytes.size(), blocked)) {
    // Credit never waits for credit, nor behind our own data: it is what lets the sender go on.
    wire::append_credit(link_->control_outbound(), *grant);
    link_->flush();
  }
}

void node_core::on_credit(const wire::frame_view& frame) {
  wire::credit_grant g;
  if (wire::decode_credit(frame, g) || g.dst != self_) return protocol_error("malformed credit");
  // A grant from a node that left meanwhile has nothing left to open.
  if (g.src != self_ && !nodes_.contains(g.src)) return;
  send_credit_.grant(g.src, g.grant, g.window);
  flush_waiting(g.src);
}

void node_core::forget_peer(const node_id& id) {
  if (batch_ && batch_->to == id) batch_.reset();
  send_credit_.forget(id);
  receive_credit_.forget(id);
  const auto it = waiting_.find(id);
  if (it == waiting_.end()) return;
  auto queue = std::move(it->second);
  waiting_.erase(it);
  for (auto& w : queue) {
    if (w.request_id != 0) --waiting_requests_;
    if (w.done) fail_soon(std::move(w.done), make_error_code(errc::node_left));
  }
}

void node_core::on_nodes_up(const wire::frame_view& frame) {
  std::vector<wire::node_entry> entries;
  bool snapshot = false;
  if (wire::decode_nodes_up(frame, entries, snapshot)) return protocol_error("malformed nodes_up");
  for (const auto& e : entries) {
    if (e.node == self_ || nodes_.contains(e.node)) continue;
    node_info info{e.node, e.host, e.pid, std::nullopt};
    if (e.slot != wire::no_slot) {
      info.slot = galaxies::slot{e.host, e.slot};
      // Our master announces a slot's new node only after its old one's departure.
      if (!slots_.try_emplace(*info.slot, e.node).second)
        return protocol_error("two live nodes in slot " + info.slot->to_string());
    }
    const auto it = nodes_.emplace(e.node, std::move(info)).first;
    if (callbacks_.node_joined) callbacks_.node_joined(it->second);
    if (state_ == state::closed) return;
  }
  // Ready once the groups_up snapshot that follows completes (protocol.md §5.1).
  if (snapshot) nodes_snapshot_ = true;
}

void node_core::on_nodes_down(const wire::frame_view& frame) {
  std::vector<wire::node_down_entry> entries;
  if (wire::decode_nodes_down(frame, entries)) return protocol_error("malformed nodes_down");
  for (const auto& e : entries) {
    auto it = nodes_.find(e.node);
    if (it == nodes_.end()) continue;
    const node_info info = it->second;
    nodes_.erase(it);
    if (info.slot) slots_.erase(*info.slot);
    forget_peer(info.id);
    pending_.fail_target(info.id, make_error_code(errc::node_left));
    // Its groups first, then the node: all after its last message (protocol.md §5.1).
    leave_all_groups(info);
    if (callbacks_.node_left) callbacks_.node_left(info, e.reason, e.detail);
    if (state_ == state::closed) return;
  }
}

void node_core::on_hosts_up(const wire::frame_view& frame) {
  std::vector<wire::host_entry> entries;
  bool snapshot = false;
  if (wire::decode_hosts_up(frame, entries, snapshot)) return protocol_error("malformed hosts_up");
  for (const auto& e : entries) {
    auto [it, inserted] = hosts_.try_emplace(e.host, host_info{e.host, e.address});
    if (inserted && callbacks_.host_joined) callbacks_.host_joined(it->second);
    if (state_ == state::closed) return;
  }
}

void node_core::on_hosts_down(const wire::frame_view& frame) {
  std::vector<wire::host_down_entry> entries;
  if (wire::decode_hosts_down(frame, entries)) return protocol_error("malformed hosts_down");
  for (const auto& e : entries) {
    auto it = hosts_.find(e.host);
    if (it == hosts_.end()) continue;
    const host_info info = it->second;
    hosts_.erase(it);
    if (callbacks_.host_left) callbacks_.host_left(info, e.reason);
    if (state_ == state::closed) return;
  }
}

void node_core::on_stopping(const wire::frame_view& frame) {
  if (std::exchange(told_stopping_, true)) return;  // a second word changes nothing
  const std::chrono::milliseconds grace(wire::decode_stopping(frame));
  if (!callbacks_.stopping) {
    spdlog::debug("node {}: the master is stopping; leaving", self_.to_string());
    return stop();
  }
  spdlog::debug("node {}: the master is stopping; draining for up to {} ms", self_.to_string(),
                grace.count());
  drain d(weak_from_this(), std::chrono::steady_clock::now() + grace);
  try {
    callbacks_.stopping(std::move(d));
  } catch (const std::exception& e) {
    // The drain, unwound with the exception, has said done: the node leaves.
    spdlog::error("on_stopping threw: {}", base::printable(e.what(), 200));
  }
}

void node_core::protocol_error(std::string_view what) {
  spdlog::error("node {}: bad frame from the master: {}", self_.to_string(), what);
  disconnect(make_error_code(errc::not_connected), what);
}

void node_core::on_closed(transport::close_reason reason, std::error_code) {
  if (state_ == state::closed) {
    if (callbacks_.link_closed) callbacks_.link_closed();
    return;
  }
  disconnect(make_error_code(errc::not_connected),
             std::string("connection to the master ") + transport::to_string(reason));
}

void node_core::disconnect(std::error_code error, std::string_view why, bool graceful) {
  if (state_ == state::closed) return;
  const bool was_connected = state_ == state::registered || state_ == state::ready;
  state_ = state::closed;
  disconnect_reason_ = std::string(why);
  if (link_ && graceful && was_connected && link_->writable()) {
    // The master announces us as a graceful leave; link_closed fires once it is written.
    wire::append_goodbye(link_->outbound(), leave_reason::graceful);
    link_->close_after_flush(transport::close_reason::local);
  } else if (link_) {
    link_->detach();
    link_->close(transport::close_reason::local);
    if (graceful && callbacks_.link_closed)
      asio::post(executor_, [weak = weak_from_this()] {
        if (auto self = weak.lock(); self && self->callbacks_.link_closed)
          self->callbacks_.link_closed();
      });
  }
  // Everything we knew is gone from our point of view: each known node leaves exactly once.
  const std::error_code unsent =
      error == errc::shutting_down ? error : make_error_code(errc::not_connected);
  for (auto& [to, queue] : std::exchange(waiting_, {}))
    for (auto& w : queue)
      if (w.done) fail_soon(std::move(w.done), unsent);
  waiting_requests_ = 0;
  batch_.reset();
  send_credit_.clear();
  receive_credit_.clear();
  pending_.fail_all(error == errc::shutting_down ? error : make_error_code(errc::not_connected));
  auto gone = std::move(nodes_);
  nodes_.clear();
  slots_.clear();
  for (const auto& [id, info] : gone) {
    leave_all_groups(info);
    if (callbacks_.node_left) callbacks_.node_left(info, leave_reason::disconnected, 0);
  }
  // This node is out of the cluster, so out of its groups as everybody else sees it.
  leave_all_groups(self_info());
  group_members_.clear();
  node_groups_.clear();
  auto gone_hosts = std::move(hosts_);
  hosts_.clear();
  for (const auto& [id, info] : gone_hosts)
    if (callbacks_.host_left) callbacks_.host_left(info, leave_reason::disconnected);
  if (callbacks_.disconnected) callbacks_.disconnected(error, disconnect_reason_);
  if (callbacks_.ended) callbacks_.ended(error);
}

}  // namespace galaxies::detail
