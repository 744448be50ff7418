// What the director tells along the way: hosts coming up, a sample of what the players do, the
// traffic every few seconds, and the summary at the end.
#include <fmt/format.h>

#include <filesystem>
#include <map>

#include "director.hpp"
#include "director_helpers.hpp"

namespace director {
namespace {

constexpr double story_every_s = 1.5;
constexpr double traffic_every_s = 5.0;

}  // namespace

void demo::on_event(const nlohmann::json& event) {
  const std::string ev = event.value("ev", "");
  if (ev == "ready") {
    const std::string host_label = event.value("host_label", "");
    auto workers = view_.of_host(host_label);
    std::erase_if(workers, [](const worker_record* w) { return !w->ready; });
    if (!hosts_announced_.contains(host_label) &&
        workers.size() >= static_cast<std::size_t>(opts_.workers)) {
      std::string list;
      for (const auto* w : workers)
        list += fmt::format("{}{} (pid {})", list.empty() ? "" : ", ", w->label, w->pid);
      pid_t master = 0;
      for (const auto& h : hosts_)
        if (h->label() == host_label) master = h->pid();
      say(fmt::format("host {} {}: master pid {} listening on {}; workers {}", host_label,
                      hosts_announced_.empty() ? "is up" : "joined the cluster", master,
                      view_.address_of(event.value("host", "")), list));
      hosts_announced_.insert(host_label);
    }
  }
  if (ev == "room_join" && event.value("moved", false)) {
    room_moves_.push_back(event);
    room_moves_quiet_since_ = elapsed();
  }
  if (!quiet_) tell_story(event);
}

// One story every ~1.5 s, taking turns: a chat, a room join, a where_is question, a trade.
void demo::tell_story(const nlohmann::json& event) {
  const double now = elapsed();
  if (now < next_story_at_) return;
  const std::string ev = event.value("ev", "");
  const std::string kind_of_request =
      ev == "request" && !event.contains("error") ? event.value("kind", "") : "";
  int kind = -1;
  if (ev == "chat" && !event.contains("error") && event.value("listeners", 0) > 0) kind = 0;
  if (ev == "room_join" && !event.value("local", false) && !event.value("moved", false)) kind = 1;
  if (kind_of_request == "where_is") kind = 2;
  if (kind_of_request == "trade") kind = 3;
  if (kind < 0) return;
  // Wait a little for the kind whose turn it is, then take whatever comes.
  if (kind != story_turn_ % 4 && now < next_story_at_ + 1.0) return;

  const std::string me = view_.label(event.value("me", ""));
  const double rtt_ms = static_cast<double>(event.value("rtt_us", 0LL)) / 1000.0;
  const std::string player = event.value("player", "");
  if (kind == 0) {
    say(fmt::format(
        "{} ({}) says \"{}\" in room {}, hosted by {}: one publish to group {} reaches its {} "
        "member worker(s), {} player(s) listening",
        player, view_.label(event.value("from", "")), event.value("text", ""),
        event.value("room", 0), me, event.value("group", ""), event.value("workers", 0),
        event.value("listeners", 0)));
  } else if (kind == 1) {
    std::set<std::string> others;
    for (const auto& o : event.value("others", nlohmann::json::array()))
      others.insert(o.get<std::string>());
    say(fmt::format(
        "{} ({}) joined room {}, hosted by {}, in a {:.2f} ms round trip, so {} is in group {}; {}",
        player, me, event.value("room", 0), view_.label(event.value("host", "")), rtt_ms, me,
        event.value("group", ""),
        others.empty() ? "nobody else there yet" : "already there: " + join(others)));
  } else if (kind == 2) {
    const auto answer = event.value("answer", nlohmann::json::object());
    say(fmt::format("{} asks {} where {} is: room {} at ({}, {}), answered in {:.2f} ms", me,
                    view_.label(event.value("to", "")), player, answer.value("room", 0),
                    answer.value("x", 0), answer.value("y", 0), rtt_ms));
  } else {
    const bool accepted = event.value("answer", nlohmann::json::object()).value("accepted", false);
    say(fmt::format("{} ({}) offered {} ({}) a {}: {} after {:.1f} s of thinking", player, me,
                    event.value("other", ""), view_.label(event.value("to", "")),
                    event.value("item", ""), accepted ? "accepted" : "declined", rtt_ms / 1000.0));
  }
  story_turn_ = kind + 1;
  next_story_at_ = now + story_every_s;
}

void demo::tell_traffic() {
  const std::uint64_t positions = view_.total("positions_in");
  const std::uint64_t chats = view_.total("chats_relayed");
  const long long now = now_us();
  if (traffic_since_us_ != 0) {
    std::size_t answered = 0, failed = 0;
    for (const auto& r : view_.requests())
      if (r.t_us >= traffic_since_us_) ++(r.error.empty() ? answered : failed);
    say(fmt::format(
        "traffic in the last {:g} s: {} position updates delivered, {} chats, {} requests "
        "answered (round trip p50 {:.2f} ms, p99 {:.2f} ms), {} failed",
        traffic_every_s, positions - traffic_positions_, chats - traffic_chats_, answered,
        percentile_ms(view_.requests(), 0.5, traffic_since_us_),
        percentile_ms(view_.requests(), 0.99, traffic_since_us_), failed));
  }
  traffic_positions_ = positions;
  traffic_chats_ = chats;
  traffic_since_us_ = now;
  next_traffic_at_ = elapsed() + traffic_every_s;
}

// Rooms live where room_directory puts them, so they move when workers come and go; their
// players follow (their workers stay in the room's group: only the publisher changes). Told once a
// burst of moves is over.
void demo::tell_room_moves() {
  if (room_moves_.empty() || elapsed() - room_moves_quiet_since_ < 0.5) return;
  // A player may follow its room more than once in a burst: told once, where it ended up.
  std::map<std::string, nlohmann::json> last_move;
  for (const auto& e : room_moves_) last_move[e.value("me", "") + e.value("player", "")] = e;
  std::string examples;
  int told = 0;
  for (const auto& [key, e] : last_move) {
    if (told++ == 3) break;
    examples += fmt::format("{}{} ({}) to room {} on {}", told > 1 ? ", " : "",
                            e.value("player", ""), view_.label(e.value("me", "")),
                            e.value("room", 0), view_.label(e.value("host", "")));
  }
  say(
      fmt::format("the membership changed, so rooms moved: {} player(s) followed their room to its "
                  "new host, which now publishes to the room's group, e.g. {}",
                  last_move.size(), examples));
  room_moves_.clear();
}

void demo::summary() {
  const std::size_t started = view_.workers().size();
  const std::size_t first = static_cast<std::size_t>(opts_.hosts * opts_.workers);
  std::size_t joins = 0, leaves = 0;
  for (auto* w : view_.workers()) {
    joins += w->joined.size();
    leaves += w->left.size();
  }
  std::map<std::string, int> errors;
  std::size_t answered = 0;
  for (const auto& r : view_.requests()) r.error.empty() ? ++answered : ++errors[r.error];
  std::string failed;
  for (const auto& [e, n] : errors)
    failed += fmt::format("{}{} {}", failed.empty() ? "" : ", ", n, e);
  std::map<std::string, int> trades;
  for (const auto& [key, tr] : view_.trades()) {
    const worker_record* from = view_.find(tr.from);
    ++trades[tr.done                ? tr.outcome
             : from && from->killed ? "lost with the killed worker"
                                    : "unfinished"];
  }
  std::string trade_list;
  for (const auto& [o, n] : trades)
    trade_list += fmt::format("{}{} {}", trade_list.empty() ? "" : ", ", n, o);
  const auto& rq = view_.requests();

  fmt::print("  registry    {}\n", registry_text_);
  fmt::print(
      "  workers     {} started ({} + {} respawned); {} killed, {} stopped with their host, {} ran "
      "to the end\n",
      started, first, started > first ? started - first : 0, killed_, stopped_with_host_,
      running_at_end_);
  fmt::print(
      "  messages    {} sent and {} received by the workers (a broadcast is sent once and received "
      "by "
      "every other worker)\n",
      view_.total("sent"), view_.total("received"));
  fmt::print(
      "  game        {} position updates delivered, {} chats published to room groups (heard {} "
      "times), {} trades offered ({})\n",
      view_.total("positions_in"), view_.total("chats_relayed"), view_.total("heard"),
      view_.trades().size(), trade_list);
  fmt::print("  requests    {} answered, {} failed{}\n", answered, rq.size() - answered,
             failed.empty() ? "" : " (" + failed + ")");
  fmt::print(
      "  latency     round trip of join, where_is and ping: p50 {:.2f} ms, p90 {:.2f} ms, p99 "
      "{:.2f} ms, "
      "max {:.2f} ms\n",
      percentile_ms(rq, 0.5), percentile_ms(rq, 0.9), percentile_ms(rq, 0.99),
      percentile_ms(rq, 1.0));
  fmt::print("  membership  {} nodeJoined and {} nodeLeft seen by the workers\n", joins, leaves);
  std::fflush(stdout);
}

int demo::verdict() {
  if (!failures_.empty()) {
    fmt::print("\ndemo FAILED ({} problem(s)):\n", failures_.size());
    for (const auto& f : failures_) fmt::print("  - {}\n", f);
    fmt::print(
        "logs kept in {}: host-X.log (each host's galaxies log), events.jsonl (what workers "
        "printed){}\n",
        opts_.work_dir,
        store_ ? fmt::format(", {}.log (the registry server's log)", store_->program()) : "");
    if (store_ && opts_.keep)
      fmt::print("{} data kept in {}\n", store_->program(), store_->dir().string());
    return 1;
  }
  fmt::print("\ndemo passed:\n");
  for (const auto& c : checks_) fmt::print("  ok  {}\n", c);
  if (opts_.keep) {
    fmt::print("logs kept in {}\n", opts_.work_dir);
    if (store_) fmt::print("{} data kept in {}\n", store_->program(), store_->dir().string());
  } else {
    std::error_code ignored;
    std::filesystem::remove_all(opts_.work_dir, ignored);
  }
  return 0;
}

}  // namespace director
