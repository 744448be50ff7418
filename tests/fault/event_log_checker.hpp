// The offline checker of chatter's event logs (one JSON-lines file per node, see
// chatter_worker.hpp): it reads every node's log and lists every breach of the contract the
// users rely on (README "Guarantees"), as human-readable violations. Rules:
//  - fifo:      per (sender, receiver), the received seqs strictly increase (no duplicate, no
//               reorder);
//  - gap:       a seq skipped between two receives (or before the first) is explained only by a
//               nodeLeft(sender) the receiver saw after its previous receive from that sender;
//  - joined:    a message (or served request) from X only while the receiver has X joined;
//  - alternate: per observer and node id, nodeJoined and nodeLeft strictly alternate, starting
//               with nodeJoined (left exactly once per join episode, never a silent swap); the
//               same for hostJoined / hostLeft;
//  - requests:  every request ends at most once, never with another request's reply; a node that
//               went idle (quiesced, nothing pending) ended every request exactly once; requests
//               to X still pending when nodeLeft(X) arrives have ended before it (node.hpp: they
//               complete with node_left first, then on_node_left runs);
//  - groups:    per observer, group and member, groupJoined and groupLeft strictly alternate,
//               starting with groupJoined; another node's groupJoined only while it is joined;
//               no nodeLeft(X) while X is still in a group (its groupLefts come first); a publish
//               of X to group g is handled only while the observer has X in g (after X's
//               groupJoined, before its groupLeft); a join refused (join_fail) is a breach;
//  - group fifo: per (publisher, receiver), the publish seqs handled strictly increase, and
//               publishes and sends do not overtake each other (a send carries the number of
//               publishes made before it, `pubs`);
//  - view:      a node's node.nodes() at quiesce equals the nodes its events say it knows;
//  - drained (option): once sender and receiver are both quiesced and the receiver still has the
//               sender joined (no nodeLeft after its last receive), every seq sent arrived;
//  - same views (option): every quiesced node knew the same nodes (itself included) and hosts
//               when it quiesced.
// Threading: none; a log_set is used by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace galaxies::test::fault {

enum class kind : std::uint8_t {
  boot,
  started,
  node_joined,
  node_left,
  host_joined,
  host_left,
  send,
  send_fail,
  recv,
  serve,
  request,
  request_end,
  quiesce,
  idle,
  disconnected,
  group_joined,
  group_left,
  publish,
  publish_fail,
  deliver,
  join_fail,
  other,
};

inline constexpr std::uint32_t no_id = 0xffffffff;

// One line of a node's log, parsed. Ids are interned in the log_set (log_set::id()).
struct record {
  double t_ms = 0;
  kind what = kind::other;
  std::uint32_t peer = no_id;  // the node (messages, node events) or host (host events)
  std::uint64_t number = 0;    // seq, or request id
  std::string text;            // reason (leaves), outcome (request_end), group (group events)
  int detail = 0;              // nodeLeft detail (the wait status for `exited`)
  bool echo = true;            // request_end: the reply carried the request's own payload
  std::optional<std::uint64_t> pubs;  // recv: the sender's publishes made before this send
  std::size_t line = 0;               // 1-based line number in its file
};

struct node_log {
  std::filesystem::path file;
  std::uint32_t node = no_id;
  std::uint32_t host = no_id;  // from `started`
  std::string label;
  int pid = 0;
  std::vector<record> records;
  std::vector<std::size_t> membership;  // indices of node/host/group joined/left records
  // From the quiesce record.
  bool quiesced = false;
  bool idle = false;
  std::vector<std::uint32_t> quiesce_nodes;
  std::vector<std::uint32_t> quiesce_hosts;
  std::map<std::uint32_t, std::uint64_t> sent;  // receiver -> last seq sent, at quiesce
  // Live state, updated as lines are read.
  std::set<std::uint32_t> nodes_now;  // joined and not left
  std::set<std::uint32_t> hosts_now;
  std::vector<std::string> parse_errors;
};

// Every node log of one directory (*.jsonl), read incrementally: refresh() parses only what was
// appended since the last call (an incomplete last line waits for its newline).
class log_set {
 public:
  log_set() = default;
  explicit log_set(std::filesystem::path dir) : dir_(std::move(dir)) {}

  void refresh();
  // Feeds one line of `file` (for tests with synthetic logs).
  void add_line(const std::string& file, std::string_view line);

  const std::vector<node_log>& nodes() const { return nodes_; }
  const node_log* find(std::uint32_t node) const;
  const node_log* find(const std::string& node) const;
  // The interned id (no_id when never seen) and back.
  std::uint32_t lookup(const std::string& id) const;
  const std::string& id(std::uint32_t index) const;
  // "1a2b3c4d@a (pid 123)": short for messages.
  std::string name(std::uint32_t node) const;

 private:
  struct file_state {
    std::size_t offset = 0;
    std::string partial;
    std::size_t lines = 0;
    std::size_t index = 0;  // into nodes_
  };
  std::uint32_t intern(const std::string& id);
  node_log& log_of(const std::string& file);
  void parse(node_log& log, std::string_view line, std::size_t number);

  std::filesystem::path dir_;
  std::map<std::string, file_state> files_;
  std::vector<node_log> nodes_;
  std::vector<std::string> ids_;
  std::unordered_map<std::string, std::uint32_t> index_;
};

struct check_options {
  bool require_drained = false;
  bool require_same_views = false;
  std::size_t max_violations = 200;  // the list stops there (with a last line saying so)
};

std::vector<std::string> check(const log_set& logs, const check_options& options = {});

// Pairs (sender, receiver), both quiesced, where the receiver still waits for seqs the sender
// sent (the `drained` rule): empty once everything sent has arrived.
std::vector<std::string> undelivered(const log_set& logs);

}  // namespace galaxies::test::fault
