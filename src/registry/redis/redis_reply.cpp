#include "registry/redis/redis_reply.hpp"

namespace galaxies::registry::redis {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "redis"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::server_error:
        return "the Redis server answered with an error";
      case errc::unexpected_reply:
        return "unexpected reply from the Redis server";
      case errc::connection_closed:
        return "the Redis server closed the connection";
      case errc::not_connected:
        return "not connected to the Redis server";
      case errc::connect_failed:
        return "cannot connect to the Redis server";
    }
    return "unknown redis error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace galaxies::registry::redis
