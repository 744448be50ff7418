// Groups inside a node (docs/protocol.md §4.3, §5.1): its own joins and leaves, the members as its
// master tells them, one event per change, and publish as one frame per host.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

#include "base/text.hpp"
#include "wire/groups.hpp"
#include "worker/node_core.hpp"

namespace galaxies::detail {

node_info node_core::self_info() const {
  return {self_, host_, static_cast<std::uint32_t>(::getpid()), slot()};
}

std::error_code node_core::join(std::string_view group) {
  if (!wire::is_group_name(group)) return std::make_error_code(std::errc::invalid_argument);
  if (state_ == state::closed) return stopped_ ? errc::shutting_down : errc::not_connected;
  if (own_groups_.contains(group)) return {};
  if (own_groups_.size() >= max_groups_) return errc::overloaded;
  if (const auto it = group_members_.find(group);
      it != group_members_.end() && it->second.size() >= max_group_members_)
    return errc::overloaded;
  const std::string name(group);
  own_groups_.insert(name);
  // Before the welcome it is remembered, and told right after it (registered()).
  if (state_ == state::registered || state_ == state::ready)
    announce_own(wire::frame_type::groups_up, std::span(&name, 1));
  return {};
}

std::error_code node_core::leave(std::string_view group) {
  if (!wire::is_group_name(group)) return std::make_error_code(std::errc::invalid_argument);
  if (state_ == state::closed) return stopped_ ? errc::shutting_down : errc::not_connected;
  const auto it = own_groups_.find(group);
  if (it == own_groups_.end()) return {};
  const std::string name = *it;
  // From now on this node handles no publish to the group, whatever is still on its way.
  own_groups_.erase(it);
  if (state_ == state::registered || state_ == state::ready)
    announce_own(wire::frame_type::groups_down, std::span(&name, 1));
  return {};
}

std::vector<node_info> node_core::members(std::string_view group) const {
  std::vector<node_info> out;
  const auto it = group_members_.find(group);
  if (it == group_members_.end()) return out;
  out.reserve(it->second.size());
  for (const node_id& id : it->second) {
    if (id == self_) {
      out.push_back(self_info());
    } else if (const auto n = nodes_.find(id); n != nodes_.end()) {
      out.push_back(n->second);
    }
  }
  return out;
}

std::vector<std::string> node_core::groups() const {
  return {own_groups_.begin(), own_groups_.end()};
}

void node_core::announce_own(wire::frame_type type, std::span<const std::string> groups) {
  std::vector<wire::group_entry> entries;
  std::size_t bytes = 0;
  const std::size_t room = link_->max_frame_size() - wire::header_size - 4;
  auto append = [&] {
    if (type == wire::frame_type::groups_up)
      wire::append_groups_up(link_->outbound(), entries, false);
    else
      wire::append_groups_down(link_->outbound(), entries);
  };
  for (const auto& g : groups) {
    wire::group_entry e{self_, g};
    if (bytes + wire::group_entry_size(e) > room) {
      append();
      entries.clear();
      bytes = 0;
    }
    bytes += wire::group_entry_size(e);
    entries.push_back(std::move(e));
  }
  if (!entries.empty()) append();
  // A membership change is not refused for want of room: the limits bound what it can cost.
  link_->flush();
}

void node_core::registered(const std::optional<wire::group_limits>& limits) {
  if (limits) {
    max_groups_ = limits->max_groups_per_node;
    max_group_members_ = limits->max_group_members;
  }
  if (own_groups_.empty()) return;
  std::vector<std::string> joins(own_groups_.begin(), own_groups_.end());
  if (joins.size() > max_groups_) {
    // Joined before the master named its bound, which is lower than ours: the master would close
    // a node that announced more. Those past the bound are not joined, loudly.
    for (std::size_t i = max_groups_; i < joins.size(); ++i) {
      spdlog::error("node {}: not in group '{}': the master allows {} groups per node",
                    self_.to_string(), base::printable(joins[i]), max_groups_);
      own_groups_.erase(joins[i]);
    }
    joins.resize(max_groups_);
  }
  announce_own(wire::frame_type::groups_up, joins);
}

std::error_code node_core::publish(std::string_view group, std::string_view command,
                                   byte_view payload) {
  if (state_ != state::ready) return errc::not_connected;
  if (command.empty() || !wire::is_group_name(group))
    return std::make_error_code(std::errc::invalid_argument);
  if (command.size() > limits::max_command_size) return errc::too_large;
  const auto it = group_members_.find(group);
  if (it == group_members_.end()) return {};
  // The receivers by host: one frame each, naming that host's members.
  std::size_t hosts = 0;
  for (const node_id& id : it->second) {
    const auto n = nodes_.find(id);
    if (id == self_ || n == nodes_.end()) continue;
    const host_id& host = n->second.host;
    auto slot = std::find_if(publish_hosts_.begin(), publish_hosts_.begin() + hosts,
                             [&](const auto& h) { return h.first == host; });
    if (slot == publish_hosts_.begin() + hosts) {
      if (hosts == publish_hosts_.size()) publish_hosts_.emplace_back();
      slot = publish_hosts_.begin() + hosts++;
      slot->first = host;
      slot->second.clear();
    }
    slot->second.push_back(id);
  }
  if (hosts == 0) return {};
  const auto receivers = std::span(publish_hosts_).first(hosts);
  auto frame_size = [&](const std::vector<node_id>& members) {
    return wire::publish_frame_size(command.size(), group.size(), members.size(), payload.size());
  };
  // Every pair of every frame must admit it, or nothing goes (as for broadcast).
  std::size_t total = 0;
  for (const auto& [host, members] : receivers) {
    if (payload.size() > link_->max_frame_size() || frame_size(members) > link_->max_frame_size())
      return errc::too_large;
    total += frame_size(members);
  }
  bool admitted = link_->has_room(total);
  for (const auto& [host, members] : receivers)
    for (const node_id& id : members)
      if (waiting_.contains(id) || !send_credit_.admits(id, frame_size(members))) {
        send_credit_.mark_blocked(id);
        admitted = false;
      }
  if (!admitted) return errc::overloaded;
  for (const auto& [host, members] : receivers) {
    const std::size_t size = frame_size(members);
    std::uint8_t flags = 0;
    for (const node_id& id : members) {
      auto& credit = send_credit_.at(id);
      flags |= send_credit_.take(credit, size);
      ++credit.sent.messages;
      credit.sent.bytes += payload.size();
    }
    // Checked above: the frame fits, the command and the name are valid.
    wire::append_publish(link_->outbound(), self_, host, command, group, members, payload,
                         link_->max_frame_size(), flags);
  }
  link_->flush();
  ++counters_.sent;
  return {};
}

void node_core::on_publish(const wire::frame_view& frame) {
  wire::publish_view p;
  if (wire::decode_publish(frame, p, limits::max_membership_entries) || p.dst != host_ ||
      !p.lists(self_))
    return protocol_error("malformed publish");
  ++counters_.received;
  auto& credit = receive_credit_.at(p.src);
  ++credit.received.messages;
  credit.received.bytes += p.payload.size();
  // Only while in the group by its own calls: after leave() it handles none (protocol.md §4.3).
  if (own_groups_.contains(p.group))
    dispatch(p.src, handlers_.find(p.command), p.command, p.payload, 0,
             std::chrono::steady_clock::time_point::max(), p.group);
  else
    ++counters_.unhandled;
  consumed(frame, credit, p.src);
}

void node_core::on_groups_up(const wire::frame_view& frame) {
  std::vector<wire::group_entry> entries;
  bool snapshot = false;
  if (wire::decode_groups_up(frame, entries, snapshot))
    return protocol_error("malformed groups_up");
  for (auto& e : entries) {
    // A node that left meanwhile took its groups along.
    const auto n = nodes_.find(e.node);
    if (e.node != self_ && n == nodes_.end()) continue;
    if (!group_members_[e.name].insert(e.node).second) continue;
    node_groups_[e.node].push_back(e.name);
    if (callbacks_.group_joined)
      callbacks_.group_joined(e.name, e.node == self_ ? self_info() : n->second);
    if (state_ == state::closed) return;
  }
  if (snapshot && nodes_snapshot_ && state_ == state::registered) {
    state_ = state::ready;
    if (callbacks_.ready) callbacks_.ready();
  }
}

void node_core::on_groups_down(const wire::frame_view& frame) {
  std::vector<wire::group_entry> entries;
  if (wire::decode_groups_down(frame, entries)) return protocol_error("malformed groups_down");
  for (const auto& e : entries) {
    const auto g = group_members_.find(e.name);
    if (g == group_members_.end() || !g->second.erase(e.node)) continue;
    if (g->second.empty()) group_members_.erase(g);
    auto& mine = node_groups_[e.node];
    std::erase(mine, e.name);
    if (mine.empty()) node_groups_.erase(e.node);
    const auto n = nodes_.find(e.node);
    const node_info info = n != nodes_.end() ? n->second : self_info();
    if (callbacks_.group_left) callbacks_.group_left(e.name, info);
    if (state_ == state::closed) return;
  }
}

void node_core::leave_all_groups(const node_info& node) {
  const auto it = node_groups_.find(node.id);
  if (it == node_groups_.end()) return;
  const auto groups = std::move(it->second);
  node_groups_.erase(it);
  for (const auto& g : groups) {
    if (const auto m = group_members_.find(g); m != group_members_.end()) {
      m->second.erase(node.id);
      if (m->second.empty()) group_members_.erase(m);
    }
    // Every group left is told, even when a callback stops this node: exactly once each.
    if (callbacks_.group_left) callbacks_.group_left(g, node);
  }
}

}  // namespace galaxies::detail
