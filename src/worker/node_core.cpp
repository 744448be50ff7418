#include "worker/node_core.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <asio/post.hpp>

#include "base/text.hpp"
#include "wire/message.hpp"

namespace galaxies::detail {

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

void node_core::connect(transport::socket socket) {
  transport::link_settings ls;
  ls.max_frame_size = std::min(limits::handshake_max_frame_size, settings_.max_frame_size);
  ls.max_queue_bytes = settings_.max_queue_bytes;
  ls.name = "master channel of node " + self_.to_string().substr(0, 8);
  link_ = std::make_shared<transport::link>(transport::stream(std::move(socket)), std::move(ls));

  wire::hello h;
  h.role = settings_.role;
  h.sender = self_.value();
  h.target = settings_.expected_host.value();
  h.pid = static_cast<std::uint32_t>(::getpid());
  h.cluster = settings_.cluster;
  h.max_frame = settings_.max_frame_size;
  if (settings_.heartbeat.interval.count() > 0)
    h.heartbeat_ms = static_cast<std::uint32_t>(settings_.heartbeat.interval.count());
  wire::append_hello(link_->outbound(), h);
  state_ = state::handshaking;
  link_->start(this);
  link_->expire_after(limits::handshake_timeout, transport::close_reason::handshake_timeout);
  link_->flush();
}

void node_core::stop() {
  if (state_ == state::closed) return;
  disconnect(make_error_code(errc::shutting_down), "stopped", true);
}

std::vector<node_info> node_core::nodes() const {
  std::vector<node_info> out;
  out.reserve(nodes_.size());
  for (const auto& [id, info] : nodes_) out.push_back(info);
  return out;
}

std::vector<host_info> node_core::hosts() const {
  std::vector<host_info> out;
  out.reserve(hosts_.size());
  for (const auto& [id, info] : hosts_) out.push_back(info);
  return out;
}

void node_core::set_handler(std::string command, message_handler handler) {
  handlers_[std::move(command)] = std::move(handler);
}

std::error_code node_core::check_sendable(std::size_t frame_size) const {
  if (state_ != state::ready && state_ != state::registered) return errc::not_connected;
  if (frame_size > link_->max_frame_size()) return errc::too_large;
  if (!link_->has_room(frame_size)) return errc::overloaded;
  return {};
}

std::error_code node_core::append(wire::frame_type type, const node_id& to, std::uint64_t id,
                                  std::uint32_t word, std::string_view command, byte_view payload) {
  if (command.empty() && type != wire::frame_type::reply)
    return std::make_error_code(std::errc::invalid_argument);
  if (command.size() > limits::max_command_size) return errc::too_large;
  if (auto ec = check_sendable(wire::message_frame_size(command.size(), payload.size()))) return ec;
  if (auto ec = wire::append_message(link_->outbound(), type, self_, to, id, word, command, payload,
                                     link_->max_frame_size()))
    return ec;
  link_->flush();
  ++counters_.sent;
  return {};
}

std::error_code node_core::send(const node_id& to, std::string_view command, byte_view payload) {
  if (to != self_ && !nodes_.contains(to)) return errc::no_such_node;
  return append(wire::frame_type::send, to, 0, 0, command, payload);
}

std::error_code node_core::broadcast(std::string_view command, byte_view payload) {
  return append(wire::frame_type::broadcast, node_id{}, 0, 0, command, payload);
}

void node_core::fail_soon(request_callback done, std::error_code error) {
  // Never complete inside the initiating call: callers may hold locks or iterators.
  asio::post(executor_, [done = std::move(done), error]() mutable { done(error, {}); });
}

void node_core::start_request(const node_id& to, std::string_view command, byte_view payload,
                              std::chrono::milliseconds timeout, request_callback done) {
  if (state_ != state::ready && state_ != state::registered)
    return fail_soon(std::move(done), errc::not_connected);
  if (to != self_ && !nodes_.contains(to)) return fail_soon(std::move(done), errc::no_such_node);
  const std::size_t size = wire::message_frame_size(command.size(), payload.size());
  if (auto ec = check_sendable(size); ec || command.size() > limits::max_command_size)
    return fail_soon(std::move(done), ec ? static_cast<errc>(ec.value()) : errc::too_large);

  const auto deadline = transport::pending_requests::clock::now() + timeout;
  const std::uint64_t id = pending_.add(to, deadline, done);
  if (id == 0) return fail_soon(std::move(done), errc::overloaded);
  const auto ms = std::clamp<std::int64_t>(timeout.count(), 0, UINT32_MAX);
  if (auto ec = append(wire::frame_type::request, to, id, static_cast<std::uint32_t>(ms), command,
                       payload))
    fail_soon(pending_.take(id), ec);
}

void node_core::send_reply(const node_id& to, std::uint64_t request_id, errc status,
                           byte_view payload) {
  if (state_ == state::closed) return;
  if (append(wire::frame_type::reply, to, request_id, static_cast<std::uint32_t>(status), {},
             payload)) {
    // The reply could not be queued (too large or the channel is full): answer with the reason
    // instead, which is small, so that the requester learns why rather than timing out.
    const std::string_view why = "reply could not be sent";
    if (status == errc::ok)
      append(wire::frame_type::reply, to, request_id, static_cast<std::uint32_t>(errc::overloaded),
             {}, as_bytes(why));
  }
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
    case frame_type::nodes_up:
      return on_nodes_up(frame);
    case frame_type::nodes_down:
      return on_nodes_down(frame);
    case frame_type::hosts_up:
      return on_hosts_up(frame);
    case frame_type::hosts_down:
      return on_hosts_down(frame);
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
  link_->set_max_frame_size(
      std::min(w.max_frame.value_or(settings_.max_frame_size), settings_.max_frame_size));
  host_ = w.host;
  link_->cancel_expiry();
  // Both sides advertised an interval: each sends at the smaller one, and each judges silence by
  // its own detection time. A master that stops answering is then noticed even when its socket
  // stays open (SIGSTOP, a hung machine behind a live kernel).
  if (const auto ours = settings_.heartbeat.interval;
      ours.count() > 0 && w.heartbeat_ms.value_or(0))
    link_->enable_heartbeats(std::min(ours, std::chrono::milliseconds(*w.heartbeat_ms)),
                             settings_.heartbeat.detection_time());
  state_ = state::registered;
}

void node_core::on_message(const wire::frame_view& frame) {
  wire::message_view m;
  if (wire::decode_message(frame, m)) return protocol_error("malformed message");
  ++counters_.received;
  if (m.type == wire::frame_type::reply) {
    const auto status = static_cast<errc>(m.word);
    std::error_code ec = status == errc::ok ? std::error_code{} : make_error_code(status);
    if (!pending_.complete_reply(m.src, m.request_id, ec,
                                 bytes(m.payload.begin(), m.payload.end())))
      ++counters_.late_replies;
    return;
  }
  const bool is_request = m.type == wire::frame_type::request;
  auto it = handlers_.find(m.command);
  if (it == handlers_.end()) {
    if (is_request)
      send_reply(m.src, m.request_id, errc::no_handler, as_bytes(m.command));
    else
      ++counters_.unhandled;
    return;
  }
  const message msg{m.src, m.command, m.payload, is_request};
  responder r = is_request ? responder(weak_from_this(), m.src, m.request_id) : responder();
  try {
    it->second(msg, std::move(r));
  } catch (const std::exception& e) {
    // The responder, if not yet used, answered handler_failed as the exception unwound.
    spdlog::error("handler for '{}' threw: {}", base::printable(m.command),
                  base::printable(e.what(), 200));
  }
}

void node_core::on_nodes_up(const wire::frame_view& frame) {
  std::vector<wire::node_entry> entries;
  bool snapshot = false;
  if (wire::decode_nodes_up(frame, entries, snapshot)) return protocol_error("malformed nodes_up");
  for (const auto& e : entries) {
    if (e.node == self_) continue;
    auto [it, inserted] = nodes_.try_emplace(e.node, node_info{e.node, e.host, e.pid});
    if (inserted && callbacks_.node_joined) callbacks_.node_joined(it->second);
    if (state_ == state::closed) return;
  }
  if (snapshot && state_ == state::registered) {
    state_ = state::ready;
    if (callbacks_.ready) callbacks_.ready();
  }
}

void node_core::on_nodes_down(const wire::frame_view& frame) {
  std::vector<wire::node_down_entry> entries;
  if (wire::decode_nodes_down(frame, entries)) return protocol_error("malformed nodes_down");
  for (const auto& e : entries) {
    auto it = nodes_.find(e.node);
    if (it == nodes_.end()) continue;
    const node_info info = it->second;
    nodes_.erase(it);
    pending_.fail_target(info.id, make_error_code(errc::node_left));
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
  pending_.fail_all(error == errc::shutting_down ? error : make_error_code(errc::not_connected));
  auto gone = std::move(nodes_);
  nodes_.clear();
  for (const auto& [id, info] : gone)
    if (callbacks_.node_left) callbacks_.node_left(info, leave_reason::disconnected, 0);
  auto gone_hosts = std::move(hosts_);
  hosts_.clear();
  for (const auto& [id, info] : gone_hosts)
    if (callbacks_.host_left) callbacks_.host_left(info, leave_reason::disconnected);
  if (callbacks_.disconnected) callbacks_.disconnected(error, disconnect_reason_);
  if (callbacks_.ended) callbacks_.ended(error);
}

}  // namespace galaxies::detail
