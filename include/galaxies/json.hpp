// A small convenience for JSON payloads (nlohmann::json).
#pragma once

#include <nlohmann/json.hpp>

#include "galaxies/node.hpp"

namespace galaxies {

inline bytes to_bytes(const nlohmann::json& value) {
  const std::string text = value.dump();
  const auto view = as_bytes(text);
  return bytes(view.begin(), view.end());
}

// Throws nlohmann::json::parse_error on malformed input.
inline nlohmann::json parse_json(byte_view payload) {
  return nlohmann::json::parse(as_text(payload));
}

}  // namespace galaxies
