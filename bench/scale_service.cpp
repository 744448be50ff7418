#include "scale_service.hpp"

#include <galaxies/json.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "results.hpp"

namespace galaxies::bench {
namespace {

// Leaves remembered for a later question; a worker sees a handful in a benchmark run.
constexpr std::size_t max_remembered_leaves = 4096;

std::string view_answer(std::int64_t at_ns) {
  return nlohmann::json{{"complete_ns", at_ns}}.dump();
}
std::string left_answer(std::int64_t at_ns) {
  return nlohmann::json{{"left_ns", at_ns}}.dump();
}

class scale_watch : public std::enable_shared_from_this<scale_watch> {
 public:
  void install(node& n) {
    auto self = shared_from_this();
    n.on_node_joined([self](const node_info& who) { self->joined(who.id); });
    n.on_node_left([self](const node_info& who, leave_reason, int) { self->left(who.id); });
    n.on(cmd_scale_view,
         [self](const message& m, responder r) { self->ask_view(m, std::move(r)); });
    n.on(cmd_scale_leaves, [self](const message&, responder r) {
      r.reply(nlohmann::json{{"left", self->leaves_}}.dump());
    });
    n.on(cmd_scale_left,
         [self](const message& m, responder r) { self->ask_left(m, std::move(r)); });
  }

 private:
  void joined(const node_id& who) {
    ++others_;
    left_at_.erase(who);  // back after a lost host link: only its next leave counts
    const auto now = to_ns(clock::now());
    if (rose_to_.size() <= others_) rose_to_.resize(others_ + 1);
    rose_to_[others_] = now;
    for (auto it = view_waiters_.begin(); it != view_waiters_.end();) {
      if (it->first > others_) break;
      it->second.reply(view_answer(now));
      it = view_waiters_.erase(it);
    }
  }

  void left(const node_id& who) {
    ++leaves_;
    if (others_ > 0) --others_;
    const auto now = to_ns(clock::now());
    if (left_at_.size() < max_remembered_leaves) left_at_.emplace(who, now);
    auto [first, last] = left_waiters_.equal_range(who);
    for (auto it = first; it != last; ++it) it->second.reply(left_answer(now));
    left_waiters_.erase(first, last);
  }

  void ask_view(const message& m, responder r) {
    std::size_t wanted = 0;
    try {
      wanted = parse_json(m.payload).at("others").get<std::size_t>();
    } catch (const std::exception& e) {
      return r.fail(errc::handler_failed, std::string("bad request: ") + e.what());
    }
    if (others_ >= wanted && wanted < rose_to_.size())
      return r.reply(view_answer(rose_to_[wanted]));
    view_waiters_.emplace(wanted, std::move(r));
  }

  void ask_left(const message& m, responder r) {
    std::optional<node_id> who;
    try {
      who = node_id::parse(parse_json(m.payload).at("node").get<std::string>());
    } catch (const std::exception& e) {
      return r.fail(errc::handler_failed, std::string("bad request: ") + e.what());
    }
    if (!who) return r.fail(errc::handler_failed, "bad node id");
    if (auto it = left_at_.find(*who); it != left_at_.end())
      return r.reply(left_answer(it->second));
    left_waiters_.emplace(*who, std::move(r));
  }

  std::size_t others_ = 0;
  std::uint64_t leaves_ = 0;
  std::vector<std::int64_t> rose_to_;  // [k]: when the view last grew to k other nodes
  std::multimap<std::size_t, responder> view_waiters_;
  std::map<node_id, std::int64_t> left_at_;
  std::multimap<node_id, responder> left_waiters_;
};

}  // namespace

void install_scale_service(node& n) {
  std::make_shared<scale_watch>()->install(n);
}

}  // namespace galaxies::bench
