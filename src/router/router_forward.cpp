// Forwarding message frames: who may send what, replies only to requests that went the other
// way, and what happens when a destination cannot take more (protocol.md §4, docs/security.md).
#include <spdlog/spdlog.h>

#include "router/router.hpp"
#include "wire/message.hpp"

namespace galaxies::router {

void router::on_local_frame(connection& c, const wire::frame_view& frame) {
  using wire::frame_type;
  const auto type = frame.header.type;
  if (wire::is_message(type) || type == frame_type::credit) {
    if (wire::peek_src(frame) != c.node) {
      spdlog::warn("{}: {} with a forged source {}", c.link->name(), wire::to_string(type),
                   wire::peek_src(frame).to_string());
      return c.link->close(transport::close_reason::protocol_error);
    }
    // Only a master answers for another node; a node claiming to be one lies about its reply.
    if (frame.header.flags & wire::flag_from_master) {
      spdlog::warn("{}: {} marked as a master's answer", c.link->name(), wire::to_string(type));
      return c.link->close(transport::close_reason::protocol_error);
    }
    if (type == frame_type::credit) return forward_credit(c, frame);
    if (type == frame_type::publish) return forward_publish(c, frame);
    if (!body_is_valid(c, frame)) return;
    return forward(c, frame);
  }
  if (type == frame_type::groups_up || type == frame_type::groups_down)
    return on_groups_frame(c, frame);
  if (type == frame_type::goodbye) {
    c.said_goodbye = true;
    return c.link->close(transport::close_reason::eof);
  }
  spdlog::warn("{}: unexpected {}", c.link->name(), wire::to_string(type));
  c.link->close(transport::close_reason::protocol_error);
}

// Checked where it arrives, so that the receiving node never gets a frame it must hang up on: the
// connection that sent it goes instead (protocol.md §4).
bool router::body_is_valid(connection& c, const wire::frame_view& frame) {
  if (!wire::check_message_body(frame)) return true;
  spdlog::warn("{}: malformed {} from node {}", c.link->name(), wire::to_string(frame.header.type),
               wire::peek_src(frame).to_string());
  c.link->close(transport::close_reason::protocol_error);
  return false;
}

void router::forward(connection& from, const wire::frame_view& frame) {
  const auto type = frame.header.type;
  const bool from_peer = from.kind == connection_kind::peer;
  if (type == wire::frame_type::broadcast) {
    // Local nodes get a copy; peers get one each, and never relay it further.
    for_each_local_node(&from, [&](connection& to) { deliver(from, to, frame); });
    if (!from_peer) {
      for (auto& [id, peer] : peers_) deliver(from, *peer, frame);
    }
    return;
  }
  const node_id dst = wire::peek_dst(frame);
  const route* r = routes_.find(dst);
  // A peer may only ask us to deliver to our own nodes: there is no relaying between hosts.
  if (!r || (from_peer && !r->local)) {
    if (type == wire::frame_type::request) return answer_request(from, frame, errc::no_such_node);
    // It left (its nodeLeft is on the way to the sender) or was never there.
    ++counters_.dropped;
    return;
  }
  connection& to = *r->via;
  if (type == wire::frame_type::request) return forward_request(from, to, frame);
  if (type == wire::frame_type::reply &&
      !ledger_.answer(dst, wire::peek_request_id(frame), wire::peek_src(frame), &from)) {
    // Late (the request timed out or a node left), a second answer, or an answer to a request
    // that never went this way: the requester would drop it too, so it goes no further.
    ++counters_.unmatched_replies;
    return;
  }
  deliver(from, to, frame);
}

void router::forward_request(connection& from, connection& to, const wire::frame_view& frame) {
  const node_id src = wire::peek_src(frame);
  const std::uint64_t id = wire::peek_request_id(frame);
  const auto timeout = std::chrono::milliseconds(wire::peek_word(frame));
  // A request that cannot be queued is refused to its sender, who learns why at once.
  if (!to.link->writable()) return answer_request(from, frame, errc::node_left);
  if (!to.link->has_room(frame.bytes.size())) return answer_request(from, frame, errc::overloaded);
  switch (
      ledger_.add(src, id, wire::peek_dst(frame), &to, timeout, std::chrono::steady_clock::now())) {
    case request_ledger::add_result::added:
      break;
    case request_ledger::add_result::duplicate:
      // Ids are never reused by a node: this sender is broken or lying.
      spdlog::warn("{}: request id {} from node {} reused", from.link->name(), id, src.to_string());
      return from.link->close(transport::close_reason::protocol_error);
    case request_ledger::add_result::over_node_limit:
    case request_ledger::add_result::over_total_limit:
      return answer_request(from, frame, errc::overloaded);
  }
  if (!to.link->enqueue(frame.bytes, from.lane)) {
    ledger_.cancel(src, id);
    return answer_request(from, frame, errc::overloaded);
  }
  ++counters_.forwarded;
  ++to.frames_out;
  hold_back(from, to);
}

void router::forward_credit(connection& from, const wire::frame_view& frame) {
  const route* r = routes_.find(wire::peek_dst(frame));
  // The sender it was meant for left: nothing is owed to it any more. A peer may grant only to
  // our own nodes (no relaying between hosts).
  if (!r || (from.kind == connection_kind::peer && !r->local)) return;
  connection& to = *r->via;
  // Never held back and never behind data: a grant is what lets queued data drain. What grants
  // can cost is bounded by the data they answer (one per half window consumed).
  if (!to.link->writable() || !make_room(to, frame.bytes.size())) return;
  to.link->enqueue_control(frame.bytes);
  ++to.frames_out;
}

void router::hold_back(connection& from, connection& to) {
  const std::size_t high = settings_.limits.max_queue_bytes / 2;
  if (&from == &to || to.link->queued_bytes() <= high || !from.link->is_open()) return;
  from.link->pause_reading();
  ++counters_.held_back;
  ++from.stalls;
  to.held_back.push_back(from.link);
  if (from.kind == connection_kind::peer && !to.holding_host_link_since)
    to.holding_host_link_since = std::chrono::steady_clock::now();
  to.link->notify_drained_below(settings_.limits.max_queue_bytes / 4);
}

void router::release_held_back(connection& c) {
  c.holding_host_link_since.reset();
  for (auto& link : std::exchange(c.held_back, {})) link->resume_reading();
}

// A frame a sender's send() accepted, to a connection that must take it or go: the sender then
// learns from nodeLeft that it did not arrive (never a silent drop).
bool router::deliver(connection& from, connection& to, const wire::frame_view& frame) {
  if (!to.link->writable()) {
    ++counters_.dropped;  // leaving already: its nodeLeft follows
    return false;
  }
  if (!make_room(to, frame.bytes.size())) return false;
  to.link->push(frame.bytes, from.lane);
  ++counters_.forwarded;
  ++to.frames_out;
  hold_back(from, to);
  return true;
}

bool router::make_room(connection& to, std::size_t bytes) {
  while (!to.link->has_room(bytes)) {
    // Past its own bound, it is the consumer that cannot keep up. Within it, the process-wide
    // budget is spent, and the connection holding the most is the one not keeping up.
    connection* victim = &to;
    if (to.link->queued_bytes() + bytes <= settings_.limits.max_queue_bytes)
      for (auto& [ptr, other] : connections_)
        if (other->link->writable() && other->link->queued_bytes() > victim->link->queued_bytes())
          victim = ptr;
    ++counters_.slow_consumers;
    spdlog::warn("{}: cannot keep up ({} bytes queued, {} in all of this master): closing it",
                 victim->link->name(), victim->link->queued_bytes(), budget_->used());
    victim->link->close(transport::close_reason::overloaded);
    if (victim == &to) return false;
  }
  return true;
}

void router::answer_request(connection& from, const wire::frame_view& request, errc status) {
  ++counters_.refused_requests;
  const std::string_view why = status == errc::no_such_node ? "no such node"
                               : status == errc::node_left  ? "node left"
                                                            : "queue full";
  send_control(from, [&](std::vector<std::byte>& out) {
    // The reply comes "from" the node that was asked, so the requester matches it like any other;
    // the flag tells it the request never arrived (its credit comes back).
    wire::append_message(out, wire::frame_type::reply, wire::peek_dst(request),
                         wire::peek_src(request), wire::peek_request_id(request),
                         static_cast<std::uint32_t>(status), {},
                         std::as_bytes(std::span(why.data(), why.size())),
                         from.link->max_frame_size(), wire::flag_from_master);
  });
}

void router::nodes_gone(const std::unordered_set<node_id>& gone) {
  ledger_.forget(gone);
}

}  // namespace galaxies::router
