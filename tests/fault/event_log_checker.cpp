#include "event_log_checker.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <unordered_map>

namespace galaxies::test::fault {
namespace {

kind kind_of(std::string_view ev) {
  static const std::unordered_map<std::string_view, kind> kinds{
      {"boot", kind::boot},
      {"started", kind::started},
      {"nodeJoined", kind::node_joined},
      {"nodeLeft", kind::node_left},
      {"hostJoined", kind::host_joined},
      {"hostLeft", kind::host_left},
      {"send", kind::send},
      {"send_fail", kind::send_fail},
      {"recv", kind::recv},
      {"serve", kind::serve},
      {"request", kind::request},
      {"request_end", kind::request_end},
      {"quiesce", kind::quiesce},
      {"idle", kind::idle},
      {"disconnected", kind::disconnected},
      {"groupJoined", kind::group_joined},
      {"groupLeft", kind::group_left},
      {"publish", kind::publish},
      {"publish_fail", kind::publish_fail},
      {"deliver", kind::deliver},
      {"join_fail", kind::join_fail},
  };
  const auto it = kinds.find(ev);
  return it == kinds.end() ? kind::other : it->second;
}

std::string str(const nlohmann::json& doc, const char* key) {
  const auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::uint64_t num(const nlohmann::json& doc, const char* key) {
  const auto it = doc.find(key);
  return it != doc.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

std::string at(const node_log& log, const record& r) {
  return " (" + log.file.filename().string() + ":" + std::to_string(r.line) + ")";
}

// Collects violations up to a limit.
class report {
 public:
  explicit report(std::size_t limit) : limit_(limit) {}
  void add(std::string text) {
    ++count_;
    if (out_.size() < limit_) out_.push_back(std::move(text));
  }
  std::vector<std::string> take() {
    if (count_ > out_.size())
      out_.push_back("... and " + std::to_string(count_ - out_.size()) + " more violations");
    return std::move(out_);
  }

 private:
  std::size_t limit_;
  std::size_t count_ = 0;
  std::vector<std::string> out_;
};

// What one receiver knows about one sender while its log is walked.
struct pair_state {
  bool joined = false;
  bool ever_joined = false;
  std::uint64_t last_seq = 0;
  bool left_since_last_recv = false;
  std::uint64_t last_publish = 0;  // the last publish seq handled from it
  std::uint64_t pubs_before = 0;   // the most publishes it had made before a send handled
};

struct request_state {
  std::uint32_t to = no_id;
  int ends = 0;
};

// The final per-sender state of one receiver, for the drained rule.
using final_pairs = std::map<std::uint32_t, pair_state>;

struct walk_result {
  final_pairs pairs;
  // What the node's events say it knew when it quiesced (itself included), if it did.
  std::optional<std::set<std::uint32_t>> nodes_at_quiesce;
  std::set<std::uint32_t> hosts_at_quiesce;
};

walk_result walk(const log_set& logs, const node_log& log, report* out) {
  const auto who = logs.name(log.node);
  walk_result result;
  auto& pairs = result.pairs;
  std::map<std::uint32_t, bool> hosts;  // joined?
  std::map<std::uint64_t, request_state> requests;
  std::map<std::uint32_t, std::set<std::uint64_t>> pending;  // per target, not ended yet
  std::map<std::uint32_t, std::set<std::string>> groups_of;  // member -> groups joined, seen here
  for (const auto& r : log.records) {
    switch (r.what) {
      case kind::node_joined: {
        auto& p = pairs[r.peer];
        if (p.joined && out)
          out->add(who + " saw nodeJoined(" + logs.name(r.peer) +
                   ") twice without a nodeLeft between" + at(log, r));
        if (r.peer == log.node && out) out->add(who + " saw itself join" + at(log, r));
        p.joined = true;
        p.ever_joined = true;
        break;
      }
      case kind::node_left: {
        auto& p = pairs[r.peer];
        if (!p.joined && out)
          out->add(who + " saw nodeLeft(" + logs.name(r.peer) + ") without a nodeJoined before" +
                   at(log, r));
        if (auto& waiting = pending[r.peer]; !waiting.empty()) {
          if (out)
            out->add(who + " saw nodeLeft(" + logs.name(r.peer) + ") with " +
                     std::to_string(waiting.size()) + " requests to it still pending (first " +
                     std::to_string(*waiting.begin()) + ")" + at(log, r));
          waiting.clear();
        }
        if (auto& still = groups_of[r.peer]; !still.empty()) {
          if (out)
            for (const auto& g : still)
              out->add(who + " saw nodeLeft(" + logs.name(r.peer) +
                       ") while it was still in group " + g + " (no groupLeft before)" +
                       at(log, r));
          still.clear();
        }
        p.joined = false;
        p.left_since_last_recv = true;
        break;
      }
      case kind::group_joined: {
        if (!groups_of[r.peer].insert(r.text).second && out)
          out->add(who + " saw groupJoined(" + r.text + ", " + logs.name(r.peer) +
                   ") twice without a groupLeft between" + at(log, r));
        if (r.peer != log.node && !pairs[r.peer].joined && out)
          out->add(who + " saw groupJoined(" + r.text + ", " + logs.name(r.peer) +
                   ") while the node was not joined" + at(log, r));
        break;
      }
      case kind::group_left: {
        if (groups_of[r.peer].erase(r.text) == 0 && out)
          out->add(who + " saw groupLeft(" + r.text + ", " + logs.name(r.peer) +
                   ") without a groupJoined before" + at(log, r));
        break;
      }
      case kind::deliver: {
        auto& p = pairs[r.peer];
        const auto seq = std::to_string(r.number);
        if (!groups_of[r.peer].contains(r.text) && out)
          out->add(who + " handled publish " + seq + " of " + logs.name(r.peer) + " to " + r.text +
                   " while it was not in the group" + at(log, r));
        if (r.number <= p.last_publish && out)
          out->add(who + " handled publish " + seq + " of " + logs.name(r.peer) +
                   " after publish " + std::to_string(p.last_publish) +
                   (r.number == p.last_publish ? " (duplicate)" : " (reordered)") + at(log, r));
        if (r.number <= p.pubs_before && out)
          out->add(who + " handled publish " + seq + " of " + logs.name(r.peer) +
                   " after a send it made after " + std::to_string(p.pubs_before) +
                   " publishes (overtaken)" + at(log, r));
        p.last_publish = std::max(p.last_publish, r.number);
        break;
      }
      case kind::join_fail: {
        if (out) out->add(who + " could not join group " + r.text + at(log, r));
        break;
      }
      case kind::host_joined: {
        auto& joined = hosts[r.peer];
        if (joined && out)
          out->add(who + " saw hostJoined(" + logs.id(r.peer) + ") twice without a hostLeft" +
                   at(log, r));
        joined = true;
        break;
      }
      case kind::host_left: {
        auto& joined = hosts[r.peer];
        if (!joined && out)
          out->add(who + " saw hostLeft(" + logs.id(r.peer) + ") without a hostJoined before" +
                   at(log, r));
        joined = false;
        break;
      }
      case kind::recv: {
        auto& p = pairs[r.peer];
        if (!p.joined && out)
          out->add(who + " received seq " + std::to_string(r.number) + " from " +
                   logs.name(r.peer) +
                   (p.ever_joined ? " after its nodeLeft" : " before its nodeJoined") + at(log, r));
        if (r.number <= p.last_seq) {
          if (out)
            out->add(who + " received seq " + std::to_string(r.number) + " from " +
                     logs.name(r.peer) + " after seq " + std::to_string(p.last_seq) +
                     (r.number == p.last_seq ? " (duplicate)" : " (reordered)") + at(log, r));
        } else if (r.number > p.last_seq + 1 && !p.left_since_last_recv) {
          if (out)
            out->add(who + " lost seqs " + std::to_string(p.last_seq + 1) + ".." +
                     std::to_string(r.number - 1) + " from " + logs.name(r.peer) +
                     " with no nodeLeft between" + at(log, r));
        }
        if (r.pubs) {
          if (*r.pubs < p.last_publish && out)
            out->add(who + " received seq " + std::to_string(r.number) + " from " +
                     logs.name(r.peer) + ", sent after " + std::to_string(*r.pubs) +
                     " publishes, after its publish " + std::to_string(p.last_publish) +
                     " (overtaken)" + at(log, r));
          p.pubs_before = std::max(p.pubs_before, *r.pubs);
        }
        p.last_seq = std::max(p.last_seq, r.number);
        p.left_since_last_recv = false;
        break;
      }
      case kind::serve: {
        const auto& p = pairs[r.peer];
        if (!p.joined && out)
          out->add(who + " served request " + std::to_string(r.number) + " of " +
                   logs.name(r.peer) +
                   (p.ever_joined ? " after its nodeLeft" : " before its nodeJoined") + at(log, r));
        break;
      }
      case kind::request: {
        auto [it, inserted] = requests.try_emplace(r.number);
        if (!inserted && out)
          out->add(who + " started request " + std::to_string(r.number) + " twice" + at(log, r));
        it->second.to = r.peer;
        pending[r.peer].insert(r.number);
        break;
      }
      case kind::request_end: {
        auto it = requests.find(r.number);
        if (it == requests.end()) {
          if (out)
            out->add(who + " ended request " + std::to_string(r.number) + " that never began" +
                     at(log, r));
          break;
        }
        pending[it->second.to].erase(r.number);
        if (++it->second.ends > 1 && out)
          out->add(who + " ended request " + std::to_string(r.number) + " more than once" +
                   at(log, r));
        if (r.text == "reply" && !r.echo && out)
          out->add(who + " request " + std::to_string(r.number) + " to " + logs.name(r.peer) +
                   " completed with a reply that is not its own" + at(log, r));
        break;
      }
      case kind::quiesce: {
        std::set<std::uint32_t> known;
        for (const auto& [peer, p] : pairs)
          if (p.joined) known.insert(peer);
        result.nodes_at_quiesce = known;
        result.nodes_at_quiesce->insert(log.node);
        for (const auto& [host, joined] : hosts)
          if (joined) result.hosts_at_quiesce.insert(host);
        if (!out) break;
        const std::set<std::uint32_t> api(log.quiesce_nodes.begin(), log.quiesce_nodes.end());
        if (known != api)
          out->add(who + " node.nodes() lists " + std::to_string(api.size()) +
                   " nodes at quiesce but its events say " + std::to_string(known.size()) +
                   at(log, r));
        break;
      }
      default:
        break;
    }
  }
  if (log.idle && out)
    for (const auto& [id, q] : requests)
      if (q.ends == 0)
        out->add(who + " went idle with request " + std::to_string(id) + " to " + logs.name(q.to) +
                 " never ended");
  return result;
}

// The drained rule over the final states; `add` gets each pair still waiting.
template <class Add>
void each_undelivered(const log_set& logs, const std::map<std::uint32_t, walk_result>& finals,
                      Add add) {
  for (const auto& receiver : logs.nodes()) {
    if (!receiver.quiesced) continue;
    const auto f = finals.find(receiver.node);
    if (f == finals.end()) continue;
    for (const auto& [sender_id, p] : f->second.pairs) {
      if (!p.joined || p.left_since_last_recv) continue;
      const node_log* sender = logs.find(sender_id);
      if (!sender || !sender->quiesced) continue;
      const auto sent = sender->sent.find(receiver.node);
      if (sent == sender->sent.end() || sent->second <= p.last_seq) continue;
      add(logs.name(receiver.node) + " received up to seq " + std::to_string(p.last_seq) +
          " from " + logs.name(sender_id) + ", which sent up to " + std::to_string(sent->second));
    }
  }
}

}  // namespace

// ---- log_set ------------------------------------------------------------------------------------

std::uint32_t log_set::intern(const std::string& id) {
  if (id.empty()) return no_id;
  auto [it, inserted] = index_.try_emplace(id, static_cast<std::uint32_t>(ids_.size()));
  if (inserted) ids_.push_back(id);
  return it->second;
}

std::uint32_t log_set::lookup(const std::string& id) const {
  const auto it = index_.find(id);
  return it == index_.end() ? no_id : it->second;
}

const std::string& log_set::id(std::uint32_t index) const {
  static const std::string none = "?";
  return index < ids_.size() ? ids_[index] : none;
}

std::string log_set::name(std::uint32_t node) const {
  std::string out = id(node).substr(0, 8);
  if (const node_log* log = find(node)) {
    if (!log->label.empty()) out += "@" + log->label;
    if (log->pid) out += " (pid " + std::to_string(log->pid) + ")";
  }
  return out;
}

const node_log* log_set::find(std::uint32_t node) const {
  if (node == no_id) return nullptr;
  for (const auto& log : nodes_)
    if (log.node == node) return &log;
  return nullptr;
}

const node_log* log_set::find(const std::string& node) const {
  return find(lookup(node));
}

node_log& log_set::log_of(const std::string& file) {
  auto [it, inserted] = files_.try_emplace(file);
  if (inserted) {
    it->second.index = nodes_.size();
    nodes_.emplace_back();
    nodes_.back().file = file;
  }
  return nodes_[it->second.index];
}

void log_set::add_line(const std::string& file, std::string_view line) {
  node_log& log = log_of(file);
  parse(log, line, ++files_[file].lines);
}

void log_set::refresh() {
  std::error_code ec;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec))
    if (entry.path().extension() == ".jsonl") paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  for (const auto& path : paths) {
    const std::string key = path.string();
    log_of(key);
    auto& state = files_[key];
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    in.seekg(static_cast<std::streamoff>(state.offset));
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    state.offset += chunk.size();
    state.partial += chunk;
    std::size_t start = 0;
    node_log& log = nodes_[state.index];
    while (true) {
      const auto nl = state.partial.find('\n', start);
      if (nl == std::string::npos) break;
      parse(log, std::string_view(state.partial).substr(start, nl - start), ++state.lines);
      start = nl + 1;
    }
    state.partial.erase(0, start);
  }
}

void log_set::parse(node_log& log, std::string_view line, std::size_t number) {
  if (line.empty()) return;
  const auto doc = nlohmann::json::parse(line, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    log.parse_errors.push_back(log.file.filename().string() + ":" + std::to_string(number) +
                               ": not JSON: " + std::string(line.substr(0, 120)));
    return;
  }
  record r;
  r.line = number;
  r.what = kind_of(str(doc, "ev"));
  if (const auto t = doc.find("t_ms"); t != doc.end() && t->is_number()) r.t_ms = t->get<double>();
  switch (r.what) {
    case kind::boot:
    case kind::started:
      log.node = intern(str(doc, "me"));
      if (r.what == kind::started) log.host = intern(str(doc, "host"));
      log.label = str(doc, "label");
      if (const auto pid = doc.find("pid"); pid != doc.end() && pid->is_number_integer())
        log.pid = pid->get<int>();
      break;
    case kind::node_joined:
      r.peer = intern(str(doc, "node"));
      log.nodes_now.insert(r.peer);
      break;
    case kind::node_left:
      r.peer = intern(str(doc, "node"));
      r.text = str(doc, "reason");
      if (const auto d = doc.find("detail"); d != doc.end() && d->is_number_integer())
        r.detail = d->get<int>();
      log.nodes_now.erase(r.peer);
      break;
    case kind::host_joined:
      r.peer = intern(str(doc, "host"));
      log.hosts_now.insert(r.peer);
      break;
    case kind::host_left:
      r.peer = intern(str(doc, "host"));
      r.text = str(doc, "reason");
      log.hosts_now.erase(r.peer);
      break;
    case kind::send:
    case kind::send_fail:
      r.peer = intern(str(doc, "to"));
      r.number = num(doc, "seq");
      r.text = str(doc, "error");
      break;
    case kind::recv:
      r.peer = intern(str(doc, "from"));
      r.number = num(doc, "seq");
      if (const auto p = doc.find("pubs"); p != doc.end() && p->is_number_unsigned())
        r.pubs = p->get<std::uint64_t>();
      break;
    case kind::group_joined:
    case kind::group_left:
      r.peer = intern(str(doc, "node"));
      r.text = str(doc, "group");
      break;
    case kind::deliver:
      r.peer = intern(str(doc, "from"));
      r.text = str(doc, "group");
      r.number = num(doc, "seq");
      break;
    case kind::publish:
    case kind::publish_fail:
    case kind::join_fail:
      r.text = str(doc, "group");
      r.number = num(doc, "seq");
      break;
    case kind::serve:
      r.peer = intern(str(doc, "from"));
      r.number = num(doc, "id");
      break;
    case kind::request:
      r.peer = intern(str(doc, "to"));
      r.number = num(doc, "id");
      break;
    case kind::request_end:
      r.peer = intern(str(doc, "to"));
      r.number = num(doc, "id");
      r.text = str(doc, "outcome");
      if (const auto e = doc.find("echo"); e != doc.end() && e->is_boolean())
        r.echo = e->get<bool>();
      break;
    case kind::quiesce:
      log.quiesced = true;
      if (const auto n = doc.find("nodes"); n != doc.end() && n->is_array())
        for (const auto& x : *n)
          if (x.is_string()) log.quiesce_nodes.push_back(intern(x.get<std::string>()));
      if (const auto h = doc.find("hosts"); h != doc.end() && h->is_array())
        for (const auto& x : *h)
          if (x.is_string()) log.quiesce_hosts.push_back(intern(x.get<std::string>()));
      if (const auto s = doc.find("sent"); s != doc.end() && s->is_object())
        for (const auto& [to, seq] : s->items())
          if (seq.is_number_unsigned()) log.sent[intern(to)] = seq.get<std::uint64_t>();
      break;
    case kind::idle:
      log.idle = true;
      break;
    case kind::disconnected:
      r.text = str(doc, "why");
      break;
    case kind::other:
      break;
  }
  const bool membership = r.what == kind::node_joined || r.what == kind::node_left ||
                          r.what == kind::host_joined || r.what == kind::host_left ||
                          r.what == kind::group_joined || r.what == kind::group_left;
  log.records.push_back(std::move(r));
  if (membership) log.membership.push_back(log.records.size() - 1);
}

// ---- check ------------------------------------------------------------------------------------

std::vector<std::string> check(const log_set& logs, const check_options& options) {
  report out(options.max_violations);
  std::map<std::uint32_t, walk_result> finals;
  for (const auto& log : logs.nodes()) {
    for (const auto& e : log.parse_errors) out.add(e);
    if (log.node == no_id) {
      out.add(log.file.filename().string() + ": no boot record naming the node");
      continue;
    }
    finals[log.node] = walk(logs, log, &out);
  }
  if (options.require_drained)
    each_undelivered(logs, finals, [&](std::string s) { out.add("undelivered: " + s); });
  if (options.require_same_views) {
    // Every quiesced node's view when it quiesced, by its events, itself included.
    const node_log* first = nullptr;
    const walk_result* first_view = nullptr;
    for (const auto& log : logs.nodes()) {
      const auto f = finals.find(log.node);
      if (!log.quiesced || f == finals.end() || !f->second.nodes_at_quiesce) continue;
      const auto& view = f->second;
      if (!first) {
        first = &log;
        first_view = &view;
        continue;
      }
      if (*view.nodes_at_quiesce != *first_view->nodes_at_quiesce) {
        std::string diff;
        for (auto n : *view.nodes_at_quiesce)
          if (!first_view->nodes_at_quiesce->contains(n)) diff += " +" + logs.name(n);
        for (auto n : *first_view->nodes_at_quiesce)
          if (!view.nodes_at_quiesce->contains(n)) diff += " -" + logs.name(n);
        out.add("views at quiesce differ: " + logs.name(log.node) + " vs " +
                logs.name(first->node) + ":" + diff);
      }
      if (view.hosts_at_quiesce != first_view->hosts_at_quiesce)
        out.add("host views at quiesce differ: " + logs.name(log.node) + " knows " +
                std::to_string(view.hosts_at_quiesce.size()) + " hosts, " + logs.name(first->node) +
                " knows " + std::to_string(first_view->hosts_at_quiesce.size()));
    }
  }
  return out.take();
}

std::vector<std::string> undelivered(const log_set& logs) {
  std::map<std::uint32_t, walk_result> finals;
  for (const auto& log : logs.nodes())
    if (log.node != no_id && log.quiesced) finals[log.node] = walk(logs, log, nullptr);
  std::vector<std::string> out;
  each_undelivered(logs, finals, [&](std::string s) { out.push_back(std::move(s)); });
  return out;
}

}  // namespace galaxies::test::fault
