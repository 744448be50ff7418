#include "galaxies/error.hpp"

#include <string>

namespace galaxies {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "galaxies"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::ok:
        return "ok";
      case errc::timeout:
        return "timeout: no reply before the deadline";
      case errc::node_left:
        return "node_left: the target left before replying";
      case errc::no_such_node:
        return "no_such_node: the target is not a live node";
      case errc::no_handler:
        return "no_handler: the target has no handler for the command";
      case errc::too_large:
        return "too_large: the message exceeds the maximum frame size";
      case errc::overloaded:
        return "overloaded: a queue on the way is full";
      case errc::unauthorized:
        return "unauthorized";
      case errc::handler_failed:
        return "handler_failed: the handler failed or did not reply";
      case errc::shutting_down:
        return "shutting_down: the node is stopping";
      case errc::not_connected:
        return "not_connected: the node is not connected to its master";
    }
    return "unknown galaxies error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

std::string_view to_string(leave_reason reason) noexcept {
  switch (reason) {
    case leave_reason::exited:
      return "exited";
    case leave_reason::disconnected:
      return "disconnected";
    case leave_reason::host_left:
      return "host_left";
    case leave_reason::graceful:
      return "graceful";
    case leave_reason::link_lost:
      return "link_lost";
    case leave_reason::registry_expired:
      return "registry_expired";
    case leave_reason::protocol_error:
      return "protocol_error";
    case leave_reason::overloaded:
      return "overloaded";
  }
  return "unknown";
}

}  // namespace galaxies
