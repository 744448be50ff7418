// Groups at the master (docs/protocol.md §4.3, §5.1): what a node or a peer may say about its
// groups, telling the changes on in the ordered lane, the snapshots, and routing a publish to the
// nodes it lists. Group state travels with the nodes: a node that leaves takes its groups along,
// without a groups_down (its nodes_down says it).
#include <spdlog/spdlog.h>

#include "base/text.hpp"
#include "router/router.hpp"
#include "wire/groups.hpp"
#include "wire/message.hpp"

namespace galaxies::router {
namespace {

// A snapshot's groups_up frames stay this small (each entry takes at most 81 bytes).
constexpr std::size_t group_chunk_bytes = 32 * 1024;

}  // namespace

void router::on_groups_frame(connection& c, const wire::frame_view& frame) {
  const bool up = frame.header.type == wire::frame_type::groups_up;
  const bool from_peer = c.kind == connection_kind::peer;
  std::vector<wire::group_entry> entries;
  bool snapshot = false;
  if (up ? wire::decode_groups_up(frame, entries, snapshot)
         : wire::decode_groups_down(frame, entries)) {
    spdlog::warn("{}: malformed {}", c.link->name(), wire::to_string(frame.header.type));
    return c.link->close(transport::close_reason::protocol_error);
  }
  std::vector<wire::group_entry> changed;
  for (auto& e : entries) {
    // A node speaks for itself only; a peer for the nodes it announced and still has.
    const route* r = routes_.find(e.node);
    const bool owned = from_peer ? r && r->via == &c : e.node == c.node;
    if (!owned) {
      spdlog::warn("{}: {} for node {}, which is not its own", c.link->name(),
                   wire::to_string(frame.header.type), e.node.to_string());
      return c.link->close(transport::close_reason::protocol_error);
    }
    if (!up) {
      if (groups_.leave(e.node, e.name)) changed.push_back(std::move(e));
      continue;
    }
    switch (groups_.join(e.node, e.name, settings_.limits.max_groups_per_node)) {
      case group_table::join_result::joined:
        changed.push_back(std::move(e));
        break;
      case group_table::join_result::already:
        break;
      case group_table::join_result::full:
        spdlog::warn("{}: node {} joins group '{}' beyond max_groups_per_node ({})", c.link->name(),
                     e.node.to_string(), base::printable(e.name),
                     settings_.limits.max_groups_per_node);
        return c.link->close(transport::close_reason::protocol_error);
    }
  }
  // Our own nodes' changes go to our peers; a peer's only to our nodes (no relaying).
  if (up)
    announce_groups_up(changed, !from_peer);
  else
    announce_groups_down(changed, c, !from_peer);
}

void router::announce_groups_up(const std::vector<wire::group_entry>& entries, bool to_peers) {
  if (entries.empty()) return;
  auto append = [&](std::vector<std::byte>& out) { wire::append_groups_up(out, entries, false); };
  // The joiner too: it learns its join from its master, in order with everybody's.
  for_each_local_node(nullptr, [&](connection& c) { send_control(c, append); });
  if (!to_peers) return;
  for (auto& [id, peer] : peers_) send_control(*peer, append);
}

void router::announce_groups_down(const std::vector<wire::group_entry>& entries,
                                  const connection& via, bool to_peers) {
  if (entries.empty()) return;
  auto append = [&](std::vector<std::byte>& out) { wire::append_groups_down(out, entries); };
  // After the leaver's last frames, as for nodes_down.
  auto announce = [&](connection& c) {
    c.link->merge_into_ordered(via.lane);
    send_control(c, append);
  };
  for_each_local_node(nullptr, announce);
  if (!to_peers) return;
  for (auto& [id, peer] : peers_) announce(*peer);
}

void router::append_group_snapshot(connection& to,
                                   const std::function<bool(const route&)>& include) {
  const std::size_t chunk =
      std::min<std::size_t>(group_chunk_bytes, to.link->max_frame_size() - wire::header_size - 4);
  std::vector<wire::group_entry> entries;
  std::size_t bytes = 0;
  groups_.for_each([&](const node_id& node, const std::string& group) {
    const route* r = routes_.find(node);
    if (!r || !include(*r)) return;
    wire::group_entry e{node, group};
    if (bytes + wire::group_entry_size(e) > chunk) {
      wire::append_groups_up(to.link->outbound(), entries, false);
      entries.clear();
      bytes = 0;
    }
    bytes += wire::group_entry_size(e);
    entries.push_back(std::move(e));
  });
  wire::append_groups_up(to.link->outbound(), entries, true);
}

void router::drop_groups(const node_id& node) {
  groups_.drop(node);
}

// ---- publish --------------------------------------------------------------------------------

void router::forward_publish(connection& from, const wire::frame_view& frame) {
  wire::publish_view p;
  if (wire::decode_publish(frame, p, settings_.limits.max_nodes_per_host)) {
    spdlog::warn("{}: malformed publish from node {}", from.link->name(),
                 wire::peek_src(frame).to_string());
    return from.link->close(transport::close_reason::protocol_error);
  }
  if (p.dst == settings_.self) {
    // One copy to each listed node of ours; one that left is skipped (its nodes_down tells).
    for (std::size_t i = 0; i < p.count(); ++i) {
      const route* r = routes_.find(p.member(i));
      if (r && r->local)
        deliver(from, *r->via, frame);
      else
        ++counters_.dropped;
    }
    return;
  }
  if (from.kind == connection_kind::peer) {
    // The publisher's master sends each host its own frame: there is no relaying.
    spdlog::warn("{}: publish for host {}, which is not this one", from.link->name(),
                 p.dst.to_string());
    return from.link->close(transport::close_reason::protocol_error);
  }
  if (const auto it = peers_.find(p.dst); it != peers_.end()) {
    deliver(from, *it->second, frame);
    return;
  }
  // A host that left: its nodes_down is on the way to the publisher.
  ++counters_.dropped;
}

}  // namespace galaxies::router
