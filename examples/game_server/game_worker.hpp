// One worker of the game server: it hosts some rooms (room_directory decides which) and simulates a
// few players who walk around, change rooms, chat, and ask other workers questions.
//
// Room r is the galaxies group "room-r" (group_of): a worker is a member while any of its players
// is in the room, so the group's members are the workers the room's messages must reach, and its
// group events tell the room's host when a worker's players have all gone (left, or died).
//
// What goes over galaxies, and why each kind of message is used:
//   join      request  player -> room's worker   the reply lists who is there; a round trip we time
//   leave     send     player -> old room's worker
//   chat      send     player -> room's worker   the room's worker relays it, so that every
//   said      publish  room's worker -> the room's group   listener hears the room in one order
//   positions broadcast every worker -> all      each tick: where this worker's players are
//   where_is  request  anyone -> a player's worker  answered from the player's own state
//   ping      request  anyone -> any worker      the bare round-trip latency
//   trade     request  player -> another player's worker  answered after the player "thinks"
//                      (1-3 s): requests stay in flight, as to a slow service
//
// Payloads are in game_messages.hpp. Implemented in game_worker.cpp (set-up, handlers, membership)
// and game_worker_play.cpp (the game loop and what the players do).
// Threading: everything runs on the node's executor (galaxies calls handlers there).
#pragma once

#include <asio/awaitable.hpp>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "event_log.hpp"
#include "galaxies/node.hpp"
#include "game_settings.hpp"

namespace game {

class game_worker : public std::enable_shared_from_this<game_worker> {
 public:
  // Sets up handlers and event callbacks on `n` (call it from galaxies::run's worker_main). The
  // worker lives as long as the node keeps its handlers.
  static void install(galaxies::node& n, const game_settings& settings);

  game_worker(galaxies::node& n, const game_settings& settings);

 private:
  struct player {
    std::string name;
    int room = 0;
    galaxies::node_id room_host;  // the worker that accepted our join; nil while not in a room
    double x = 0, y = 0;
    bool settling = false;  // a join is in flight
  };
  struct member {  // a player in a room hosted here
    std::string name;
    galaxies::node_id node;
  };
  struct seen_player {  // another worker's player, from its position broadcasts
    std::string name;
    galaxies::node_id node;
    int room = 0;
  };
  struct stats {
    std::uint64_t positions_in = 0, chats_relayed = 0, heard = 0;
    std::uint64_t requests_ok = 0, requests_failed = 0, unknown_senders = 0;
  };

  void install_handlers();
  void install_events();

  // Handlers (message from another worker, or from this one for its own rooms).
  void on_join(const galaxies::message& m, galaxies::responder r);
  void on_leave(const galaxies::message& m);
  void on_chat(const galaxies::message& m);
  void on_said(const galaxies::message& m);
  void on_positions(const galaxies::message& m);
  void on_group_left(std::string_view group, const galaxies::node_info& x);
  void on_where_is(const galaxies::message& m, galaxies::responder r);
  void on_trade(const galaxies::message& m, galaxies::responder r);
  nlohmann::json join_here(const std::string& name, const galaxies::node_id& node, int room);
  bool check_sender(const galaxies::node_id& from);

  // The game loop and what players do in it.
  asio::awaitable<void> play();
  asio::awaitable<void> settle(std::size_t index);
  asio::awaitable<void> ask_where_is();
  asio::awaitable<void> ping_someone();
  asio::awaitable<void> offer_trade(std::size_t index);
  void chat(player& p);
  void wander(std::size_t index);
  void broadcast_positions();
  void emit_stats();

  void log_in_players();

  // Membership.
  std::vector<galaxies::node_id> view() const;  // every live node, this one included
  void rebalance();     // rooms may have moved: drop the ones no longer ours, re-join our players'
  void follow_rooms();  // be in the group of each room our players are in, and in no other

  // Sends to `to`, or handles locally when `to` is this worker (its own rooms).
  void deliver(const galaxies::node_id& to, const std::string& command, const nlohmann::json& body);
  void spawn(std::function<asio::awaitable<void>()> coroutine);
  // A request failed because this worker is stopping: not the cluster's failure, not reported.
  bool stopping() const { return stopped_ || !node_.ready(); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

  galaxies::node& node_;
  game_settings settings_;
  event_log log_;
  std::mt19937 rng_;
  bool ready_ = false;
  bool stopped_ = false;
  std::set<galaxies::node_id> known_;       // live nodes, from nodeJoined/nodeLeft
  std::set<galaxies::node_id> heard_from_;  // nodes whose position broadcasts arrived
  std::vector<player> players_;  // fixed once logged in: indexes stay valid in coroutines
  // Rooms hosted here: their players, keyed by player@node (a group knows workers, not players).
  std::map<int, std::map<std::string, member>> rooms_;
  std::map<std::string, seen_player> seen_;  // keyed by player@node
  std::uint64_t next_offer_ = 0;
  stats stats_;
};

}  // namespace game
