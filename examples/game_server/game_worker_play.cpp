// game_worker, part two: the game loop and what the players do in it (see game_worker.hpp).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "galaxies/json.hpp"
#include "game_messages.hpp"
#include "game_worker.hpp"
#include "room_directory.hpp"

namespace game {
namespace {

using asio::use_awaitable;
using asio::experimental::as_tuple;
using nlohmann::json;

constexpr std::array<const char*, 48> names = {
    "alice", "bob",  "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",  "judy",
    "kim",   "liam", "mona",  "ned",  "olga", "pablo", "quinn", "rosa",  "sam",   "tara",
    "ugo",   "vera", "walt",  "xena", "yuri", "zoe",   "amir",  "bea",   "cyril", "dana",
    "eli",   "fay",  "gus",   "hana", "igor", "jin",   "kai",   "lena",  "milo",  "nina",
    "oscar", "pia",  "raj",   "suki", "theo", "una",   "vik",   "wren"};

constexpr std::array<const char*, 8> lines = {
    "hi all",         "anyone up for a raid?", "gg",          "brb, making tea",
    "who has a map?", "meet at the fountain",  "lag? not me", "nice hat"};

constexpr std::array<const char*, 6> items = {"sword", "shield", "potion", "map", "lute", "hat"};

}  // namespace

// Players log in once the worker has looked around (see play): names already taken by players
// of other workers, known from their position broadcasts, are skipped. Workers that start at the
// same instant cannot see each other's players yet; they start from a pid-based name, distinct
// for processes started close together. Players are identified by (name, node) regardless.
void game_worker::log_in_players() {
  std::set<std::string> taken;
  for (const auto& [key, other] : seen_) taken.insert(other.name);
  std::size_t next =
      static_cast<std::size_t>(::getpid()) * static_cast<std::size_t>(settings_.players);
  for (int i = 0; i < settings_.players; ++i) {
    for (std::size_t tries = 0; tries < names.size() && taken.contains(names[next % names.size()]);
         ++tries)
      ++next;
    player p;
    p.name = names[next++ % names.size()];
    taken.insert(p.name);
    p.room = std::uniform_int_distribution<int>(1, settings_.rooms)(rng_);
    p.x = std::uniform_real_distribution<double>(0, world_size)(rng_);
    p.y = std::uniform_real_distribution<double>(0, world_size)(rng_);
    players_.push_back(std::move(p));
  }
}

asio::awaitable<void> game_worker::play() {
  asio::steady_timer timer(node_.get_executor());
  auto next_stats = std::chrono::steady_clock::now();
  const double ticks_per_second = 1000.0 / static_cast<double>(settings_.tick.count());
  // Look around first: a few ticks, or until every other worker's broadcast has come.
  for (int tick = 0; tick < 4 && !stopped_; ++tick) {
    broadcast_positions();
    if (std::all_of(known_.begin(), known_.end(),
                    [&](const auto& id) { return heard_from_.contains(id); }))
      break;
    timer.expires_after(settings_.tick);
    co_await timer.async_wait(as_tuple(use_awaitable));
  }
  if (stopped_ || !node_.ready()) co_return;
  log_in_players();
  rebalance();  // the players join their rooms
  while (!stopped_) {
    timer.expires_after(settings_.tick);
    co_await timer.async_wait(as_tuple(use_awaitable));
    if (stopped_ || !node_.ready()) break;
    broadcast_positions();
    // Rates per second, turned into chances per tick: per player a chat every ~3 s, a trade offer
    // every ~2.5 s, a room change every ~15 s; per worker a where_is and a ping about every second.
    for (auto& p : players_)
      if (!p.room_host.is_nil() && chance(0.33 / ticks_per_second)) chat(p);
    for (std::size_t i = 0; i < players_.size(); ++i)
      if (chance(0.4 / ticks_per_second)) spawn([this, i] { return offer_trade(i); });
    if (chance(1.0 / ticks_per_second)) spawn([this] { return ask_where_is(); });
    if (chance(1.0 / ticks_per_second)) spawn([this] { return ping_someone(); });
    for (std::size_t i = 0; i < players_.size(); ++i)
      if (chance(0.07 / ticks_per_second)) wander(i);
    if (std::chrono::steady_clock::now() >= next_stats) {
      emit_stats();
      next_stats += std::chrono::seconds(1);
    }
  }
}

void game_worker::broadcast_positions() {
  json all = json::array();
  std::normal_distribution<double> step(0.0, 1.5);
  for (auto& p : players_) {
    p.x = std::clamp(p.x + step(rng_), 0.0, world_size);
    p.y = std::clamp(p.y + step(rng_), 0.0, world_size);
    all.push_back({{"name", p.name}, {"room", p.room}, {"x", int(p.x)}, {"y", int(p.y)}});
  }
  // Best effort, like any position update: a full queue (overloaded) just skips this tick.
  node_.broadcast("positions", galaxies::to_bytes(json{{"players", all}}));
}

void game_worker::chat(player& p) {
  const char* text = lines[std::uniform_int_distribution<std::size_t>(0, lines.size() - 1)(rng_)];
  deliver(p.room_host, "chat", json{{"player", p.name}, {"room", p.room}, {"text", text}});
}

void game_worker::wander(std::size_t index) {
  player& p = players_[index];
  if (p.settling || p.room_host.is_nil()) return;
  const int next = std::uniform_int_distribution<int>(1, settings_.rooms)(rng_);
  if (next == p.room) return;
  deliver(p.room_host, "leave", json{{"player", p.name}, {"room", p.room}});
  p.room = next;
  p.room_host = {};
  follow_rooms();
  spawn([this, index] { return settle(index); });
}

// Joins the player's room at the worker that hosts it, until the host we joined is the one the
// current view names (the view may change while a join is in flight).
asio::awaitable<void> game_worker::settle(std::size_t index) {
  if (players_[index].settling) co_return;
  players_[index].settling = true;
  for (int attempt = 0; attempt < 5 && !stopping(); ++attempt) {
    player& p = players_[index];
    const galaxies::node_id host = owner_of(p.room, view());
    if (host == p.room_host) break;
    const bool moved = !p.room_host.is_nil();  // our room went to another worker
    const json body{{"player", p.name}, {"room", p.room}};
    const int room = p.room;
    json reply;
    std::error_code ec;
    const long long start = steady_us();
    if (host == node_.id()) {
      // Our own room: no network, the same bookkeeping as a remote join.
      reply = join_here(p.name, host, room);
    } else {
      const galaxies::bytes payload = galaxies::to_bytes(body);
      auto [error, answer] = co_await node_.request(
          host, "join", payload, settings_.request_timeout, as_tuple(use_awaitable));
      ec = error;
      if (!ec) reply = parse_or_null(answer);
    }
    const long long rtt = steady_us() - start;
    player& q = players_[index];   // the same player; re-read after the suspension for clarity
    if (q.room != room) continue;  // wandered meanwhile: join the new room instead
    if (ec && stopping()) break;
    if (ec) {
      ++stats_.requests_failed;
      log_.emit(
          "request",
          {{"kind", "join"}, {"to", host.to_string()}, {"error", error_name(ec)}, {"rtt_us", rtt}});
      // The view has probably changed (node_left), but galaxies may complete a request before it
      // calls nodeLeft: let that callback run first, then recompute the host and retry.
      co_await asio::post(node_.get_executor(), use_awaitable);
      continue;
    }
    if (host != node_.id()) ++stats_.requests_ok;
    q.room_host = host;
    log_.emit("room_join", {{"player", q.name},
                            {"room", room},
                            {"group", group_of(room)},
                            {"host", host.to_string()},
                            {"others", reply.value("others", json::array())},
                            {"moved", moved},
                            {"local", host == node_.id()},
                            {"rtt_us", rtt}});
  }
  players_[index].settling = false;
  if (!stopping()) follow_rooms();
}

asio::awaitable<void> game_worker::ask_where_is() {
  if (seen_.empty()) co_return;
  auto it = seen_.begin();
  std::advance(it, std::uniform_int_distribution<std::size_t>(0, seen_.size() - 1)(rng_));
  const seen_player target = it->second;
  const galaxies::bytes payload = galaxies::to_bytes(json{{"player", target.name}});
  const long long start = steady_us();
  auto [ec, answer] = co_await node_.request(target.node, "where_is", payload,
                                             settings_.request_timeout, as_tuple(use_awaitable));
  const long long rtt = steady_us() - start;
  if (ec && stopping()) co_return;
  json event{{"kind", "where_is"},
             {"to", target.node.to_string()},
             {"player", target.name},
             {"rtt_us", rtt}};
  if (ec) {
    ++stats_.requests_failed;
    event["error"] = error_name(ec);
  } else {
    ++stats_.requests_ok;
    event["answer"] = parse_or_null(answer);
  }
  log_.emit("request", std::move(event));
}

asio::awaitable<void> game_worker::ping_someone() {
  if (known_.empty()) co_return;
  auto it = known_.begin();
  std::advance(it, std::uniform_int_distribution<std::size_t>(0, known_.size() - 1)(rng_));
  const galaxies::node_id target = *it;
  const long long start = steady_us();
  auto [ec, answer] = co_await node_.request(target, "ping", galaxies::byte_view{},
                                             settings_.request_timeout, as_tuple(use_awaitable));
  const long long rtt = steady_us() - start;
  if (ec && stopping()) co_return;
  json event{{"kind", "ping"}, {"to", target.to_string()}, {"rtt_us", rtt}};
  if (ec) {
    ++stats_.requests_failed;
    event["error"] = error_name(ec);
  } else {
    ++stats_.requests_ok;
  }
  log_.emit("request", std::move(event));
}

asio::awaitable<void> game_worker::offer_trade(std::size_t index) {
  if (seen_.empty()) co_return;
  auto it = seen_.begin();
  std::advance(it, std::uniform_int_distribution<std::size_t>(0, seen_.size() - 1)(rng_));
  const seen_player other = it->second;
  const std::string name = players_[index].name;
  const char* item = items[std::uniform_int_distribution<std::size_t>(0, items.size() - 1)(rng_)];
  const std::uint64_t offer = ++next_offer_;
  // Announced before it is sent, so that demo_director knows which requests are in flight.
  log_.emit("trade_offer", {{"offer", offer},
                            {"to", other.node.to_string()},
                            {"player", name},
                            {"other", other.name},
                            {"item", item}});
  const galaxies::bytes payload =
      galaxies::to_bytes(json{{"player", name}, {"other", other.name}, {"item", item}});
  const long long start = steady_us();
  auto [ec, answer] = co_await node_.request(other.node, "trade", payload, std::chrono::seconds(10),
                                             as_tuple(use_awaitable));
  json event{
      {"kind", "trade"},     {"offer", offer}, {"to", other.node.to_string()}, {"player", name},
      {"other", other.name}, {"item", item},   {"rtt_us", steady_us() - start}};
  if (ec) {
    // Reported even when our own stop ended it (marked so): the director tracks offers in flight.
    if (stopping())
      event["stopping"] = true;
    else
      ++stats_.requests_failed;
    event["error"] = error_name(ec);
  } else {
    ++stats_.requests_ok;
    event["answer"] = parse_or_null(answer);
  }
  log_.emit("request", std::move(event));
}

void game_worker::emit_stats() {
  const auto c = node_.counters();
  json view_ids = json::array();
  for (const auto& id : view()) view_ids.push_back(id.to_string());
  json rooms = json::array();
  for (const auto& [room, players] : rooms_) rooms.push_back(room);
  log_.emit("stats", {{"sent", c.sent},
                      {"received", c.received},
                      {"late_replies", c.late_replies},
                      {"unhandled", c.unhandled},
                      {"positions_in", stats_.positions_in},
                      {"chats_relayed", stats_.chats_relayed},
                      {"heard", stats_.heard},
                      {"requests_ok", stats_.requests_ok},
                      {"requests_failed", stats_.requests_failed},
                      {"unknown_senders", stats_.unknown_senders},
                      {"rooms", rooms},
                      {"groups", node_.groups()},
                      {"view", view_ids}});
}

}  // namespace game
