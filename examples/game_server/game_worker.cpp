// game_worker, part one: setting up, the handlers (what a worker answers), and membership (how the
// rooms follow nodeJoined / nodeLeft, and the workers follow their players' rooms' groups). Part
// two, game_worker_play.cpp: what the players do.
#include "game_worker.hpp"

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>

#include "galaxies/json.hpp"
#include "game_messages.hpp"
#include "room_directory.hpp"

namespace game {
namespace {
using nlohmann::json;
}  // namespace

void game_worker::install(galaxies::node& n, const game_settings& settings) {
  auto worker = std::make_shared<game_worker>(n, settings);
  worker->install_handlers();
  worker->install_events();
}

game_worker::game_worker(galaxies::node& n, const game_settings& settings)
    : node_(n),
      settings_(settings),
      log_(settings.host_label, settings.json),
      rng_(std::random_device{}()) {
  log_.set_me(n.id().to_string());
}

// ---------------------------------------------------------------------------------------------
// Handlers. The worker that hosts a room keeps its players (the room's group says which workers
// have some); each player's own worker keeps the player's position. Every handler first checks the
// event contract: a message only ever comes from a node we have seen join and not yet seen leave.

void game_worker::install_handlers() {
  auto self = shared_from_this();
  node_.on("join", [self](const galaxies::message& m, galaxies::responder r) {
    self->on_join(m, std::move(r));
  });
  node_.on("leave", [self](const galaxies::message& m, galaxies::responder) { self->on_leave(m); });
  node_.on("chat", [self](const galaxies::message& m, galaxies::responder) { self->on_chat(m); });
  node_.on("said", [self](const galaxies::message& m, galaxies::responder) { self->on_said(m); });
  node_.on("positions",
           [self](const galaxies::message& m, galaxies::responder) { self->on_positions(m); });
  node_.on("where_is", [self](const galaxies::message& m, galaxies::responder r) {
    self->on_where_is(m, std::move(r));
  });
  node_.on("trade", [self](const galaxies::message& m, galaxies::responder r) {
    self->on_trade(m, std::move(r));
  });
  node_.on("ping", [self](const galaxies::message& m, galaxies::responder r) {
    if (self->check_sender(m.from)) r.reply("pong");
  });
}

bool game_worker::check_sender(const galaxies::node_id& from) {
  if (from == node_.id() || known_.contains(from)) return true;
  ++stats_.unknown_senders;
  log_.emit("anomaly", {{"what", "message from a node not (or no longer) joined"},
                        {"from", from.to_string()}});
  return false;
}

void game_worker::on_join(const galaxies::message& m, galaxies::responder r) {
  if (!check_sender(m.from)) return r.fail(galaxies::errc::handler_failed, "unknown sender");
  const json body = parse_or_null(m.payload);
  if (!body.is_object()) return r.fail(galaxies::errc::handler_failed, "bad join");
  const int room = body.value("room", 0);
  r.reply(galaxies::to_bytes(join_here(body.value("player", ""), m.from, room)));
}

json game_worker::join_here(const std::string& name, const galaxies::node_id& node, int room) {
  // A player is in one room at a time: drop it from any other room hosted here.
  const std::string key = key_of(name, node);
  for (auto& [number, members] : rooms_) members.erase(key);
  auto& members = rooms_[room];
  json others = json::array();
  for (const auto& [k, mem] : members) others.push_back(mem.name);
  members[key] = member{name, node};
  return json{{"room", room}, {"others", others}};
}

void game_worker::on_leave(const galaxies::message& m) {
  if (!check_sender(m.from)) return;
  const json body = parse_or_null(m.payload);
  if (!body.is_object()) return;
  auto it = rooms_.find(body.value("room", 0));
  if (it != rooms_.end()) it->second.erase(key_of(body.value("player", ""), m.from));
}

void game_worker::on_chat(const galaxies::message& m) {
  if (!check_sender(m.from)) return;
  json body = parse_or_null(m.payload);
  if (!body.is_object()) return;
  const int room = body.value("room", 0);
  const auto it = rooms_.find(room);
  const std::map<std::string, member> nobody;
  const auto& players = it == rooms_.end() ? nobody : it->second;
  const std::string speaker = key_of(body.value("player", ""), m.from);
  body["from"] = m.from.to_string();
  // One publish reaches each worker with players in the room once, however many it has there.
  // publish() skips the publisher: this worker's own players hear it here.
  const std::string group = group_of(room);
  const galaxies::bytes said = galaxies::to_bytes(body);
  const std::error_code ec = node_.publish(group, "said", said);
  if (!ec)
    on_said(galaxies::message{node_.id(), "said", said, false,
                              std::chrono::steady_clock::time_point::max(), group});
  json event{{"player", body.value("player", "")},
             {"from", m.from.to_string()},
             {"room", room},
             {"group", group},
             {"text", body.value("text", "")},
             {"listeners", players.size() - (players.contains(speaker) ? 1 : 0)},
             {"workers", node_.members(group).size()}};
  if (ec)
    event["error"] = error_name(ec);  // overloaded: a member is behind, so nobody hears this one
  else
    ++stats_.chats_relayed;
  log_.emit("chat", std::move(event));
}

void game_worker::on_said(const galaxies::message& m) {
  if (!check_sender(m.from)) return;
  const json body = parse_or_null(m.payload);
  if (!body.is_object()) return;
  const int room = body.value("room", 0);
  if (m.group != group_of(room)) return;  // said only ever comes published to the room's group
  for (const auto& p : players_)
    if (p.room == room && p.room_host == m.from) ++stats_.heard;
}

// A worker leaves a room's group when its last player there leaves (or when it dies): its players
// are no longer in the room, whatever leave messages were lost with it.
void game_worker::on_group_left(std::string_view group, const galaxies::node_info& x) {
  for (auto& [room, players] : rooms_)
    if (group_of(room) == group)
      std::erase_if(players, [&](const auto& kv) { return kv.second.node == x.id; });
}

void game_worker::on_positions(const galaxies::message& m) {
  if (!check_sender(m.from)) return;
  const json body = parse_or_null(m.payload);
  if (!body.is_object() || !body["players"].is_array()) return;
  heard_from_.insert(m.from);
  for (const auto& p : body["players"]) {
    const std::string name = p.value("name", "");
    seen_[key_of(name, m.from)] = seen_player{name, m.from, p.value("room", 0)};
    ++stats_.positions_in;
  }
}

void game_worker::on_where_is(const galaxies::message& m, galaxies::responder r) {
  if (!check_sender(m.from)) return r.fail(galaxies::errc::handler_failed, "unknown sender");
  const json body = parse_or_null(m.payload);
  const std::string name = body.is_object() ? body.value("player", "") : "";
  for (const auto& p : players_)
    if (p.name == name)
      return r.reply(galaxies::to_bytes(
          json{{"player", name}, {"room", p.room}, {"x", int(p.x)}, {"y", int(p.y)}}));
  r.fail(galaxies::errc::handler_failed, "no such player here");
}

void game_worker::on_trade(const galaxies::message& m, galaxies::responder r) {
  if (!check_sender(m.from)) return r.fail(galaxies::errc::handler_failed, "unknown sender");
  const json body = parse_or_null(m.payload);
  const std::string name = body.is_object() ? body.value("other", "") : "";
  if (std::none_of(players_.begin(), players_.end(),
                   [&](const player& p) { return p.name == name; }))
    return r.fail(galaxies::errc::handler_failed, "no such player here");
  // The player thinks it over before answering; the responder waits with the timer. Should this
  // worker die meanwhile, galaxies fails the request at the requester with node_left.
  const auto think =
      std::chrono::milliseconds(std::uniform_int_distribution<int>(1000, 3000)(rng_));
  auto timer = std::make_shared<asio::steady_timer>(node_.get_executor(), think);
  timer->async_wait([timer, r = std::move(r), accepted = chance(0.6)](std::error_code) mutable {
    r.reply(galaxies::to_bytes(json{{"accepted", accepted}}));
  });
}

// ---------------------------------------------------------------------------------------------
// Membership: the cluster view drives which rooms live where.

void game_worker::install_events() {
  auto self = shared_from_this();
  node_.on_node_joined([self](const galaxies::node_info& x) {
    self->known_.insert(x.id);
    self->log_.emit("joined",
                    {{"node", x.id.to_string()}, {"host", x.host.to_string()}, {"pid", x.pid}});
    self->rebalance();
  });
  node_.on_node_left([self](const galaxies::node_info& x, galaxies::leave_reason why, int detail) {
    self->known_.erase(x.id);
    self->heard_from_.erase(x.id);
    std::erase_if(self->seen_, [&](const auto& kv) { return kv.second.node == x.id; });
    self->log_.emit("left", {{"node", x.id.to_string()},
                             {"host", x.host.to_string()},
                             {"pid", x.pid},
                             {"reason", galaxies::to_string(why)},
                             {"detail", detail}});
    self->rebalance();
  });
  node_.on_group_left([self](std::string_view group, const galaxies::node_info& x) {
    self->on_group_left(group, x);
  });
  node_.on_host_joined([self](const galaxies::host_info& h) {
    self->log_.emit("host_joined", {{"host", h.id.to_string()}, {"address", h.address}});
  });
  node_.on_host_left([self](const galaxies::host_info& h, galaxies::leave_reason why) {
    self->log_.emit("host_left",
                    {{"host", h.id.to_string()}, {"reason", galaxies::to_string(why)}});
  });
  node_.on_ready([self] {
    self->ready_ = true;
    self->log_.emit("ready", {{"host", self->node_.host().to_string()},
                              {"peers", self->known_.size()},
                              {"hosts", self->node_.hosts().size()}});
    self->spawn([self] { return self->play(); });
  });
  node_.on_disconnected([self](std::error_code ec, std::string_view why) {
    if (self->stopped_) return;
    self->emit_stats();  // the last word: the director sums counters from these lines
    self->stopped_ = true;
    self->log_.emit("disconnected", {{"error", error_name(ec)}, {"why", std::string(why)}});
  });
}

std::vector<galaxies::node_id> game_worker::view() const {
  std::vector<galaxies::node_id> v(known_.begin(), known_.end());
  v.push_back(node_.id());
  return v;
}

void game_worker::rebalance() {
  // Not while disconnecting: galaxies then reports every node as left, and nothing can be sent.
  if (!ready_ || stopped_ || !node_.ready()) return;
  const auto v = view();
  std::erase_if(rooms_, [&](const auto& kv) { return owner_of(kv.first, v) != node_.id(); });
  for (std::size_t i = 0; i < players_.size(); ++i)
    if (players_[i].room_host != owner_of(players_[i].room, v))
      spawn([this, i] { return settle(i); });
}

void game_worker::follow_rooms() {
  std::set<std::string> wanted;
  for (const auto& p : players_)
    if (!p.room_host.is_nil()) wanted.insert(group_of(p.room));
  for (const auto& group : node_.groups())
    if (!wanted.contains(group)) node_.leave(group);
  for (const auto& group : wanted)
    if (const auto ec = node_.join(group); ec && !stopping())
      log_.emit("group_error", {{"group", group}, {"error", error_name(ec)}});
}

// ---------------------------------------------------------------------------------------------
// Helpers of both halves.

void game_worker::spawn(std::function<asio::awaitable<void>()> coroutine) {
  // The lambda (and so the reference to the worker) lives as long as the coroutine runs.
  asio::co_spawn(
      node_.get_executor(),
      [self = shared_from_this(), coroutine = std::move(coroutine)] { return coroutine(); },
      asio::detached);
}

void game_worker::deliver(const galaxies::node_id& to, const std::string& command,
                          const json& body) {
  const galaxies::bytes payload = galaxies::to_bytes(body);
  if (to != node_.id()) {
    // A target that just left (no_such_node) is normal during membership changes: drop it.
    node_.send(to, command, payload);
    return;
  }
  const galaxies::message local{
      node_.id(), command, payload, false, std::chrono::steady_clock::time_point::max(), {}};
  if (command == "chat") on_chat(local);
  if (command == "leave") on_leave(local);
}

}  // namespace game
