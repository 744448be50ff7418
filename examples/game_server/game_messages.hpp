// The messages game_server workers exchange (see game_worker.hpp for who sends what), and the
// small helpers both halves of game_worker use. Payloads are JSON objects:
//   join      {player, room}            reply {room, others: [names already there]}
//   leave     {player, room}
//   chat      {player, room, text}      published to group_of(room) as said {player, room, text,
//                                       from: node id}
//   positions {players: [{name, room, x, y}]}
//   where_is  {player}                  reply {player, room, x, y}
//   trade     {player, other, item}     reply {accepted}
//   ping      (empty)                   reply "pong"
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <system_error>

#include "galaxies/error.hpp"
#include "galaxies/ids.hpp"
#include "galaxies/node.hpp"

namespace game {

// Players are identified by (name, node): names are for people, and may repeat across workers.
inline std::string key_of(const std::string& name, const galaxies::node_id& node) {
  return name + "@" + node.to_string();
}

// "node_left: the target left before replying" -> "node_left": short and stable for the director.
inline std::string error_name(const std::error_code& ec) {
  if (ec.category() != galaxies::error_category()) return ec.message();
  const std::string text = ec.message();
  return text.substr(0, text.find(':'));
}

// A payload as JSON; null (not an exception) for anything malformed: peers are not trusted.
inline nlohmann::json parse_or_null(galaxies::byte_view payload) {
  return nlohmann::json::parse(galaxies::as_text(payload), nullptr, /*allow_exceptions=*/false);
}

// The galaxies group of room r: its members are the workers with players in the room.
inline std::string group_of(int room) {
  return "room-" + std::to_string(room);
}

inline constexpr double world_size = 100.0;

}  // namespace game
