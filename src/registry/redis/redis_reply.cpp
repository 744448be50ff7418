#include "registry/redis/redis_reply.hpp"

#include <hiredis/hiredis.h>

namespace galaxies::registry::redis {
namespace {

// hiredis's own reply functions (static inside hiredis, reachable through any new reader), and
// the same with the element count checked first. Written once, read-only afterwards.
const redisReplyObjectFunctions* hiredis_functions = nullptr;
redisReplyObjectFunctions limited_functions{};

void* create_limited_array(const redisReadTask* task, int elements) {
  if (elements < 0 || elements > max_reply_elements) return nullptr;
  return hiredis_functions->createArray(task, elements);
}

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

reply copy_reply(const redisReply& from) {
  reply out;
  switch (from.type) {
    case REDIS_REPLY_STRING:
      out.type = reply::kind::string;
      break;
    case REDIS_REPLY_STATUS:
      out.type = reply::kind::status;
      break;
    case REDIS_REPLY_ERROR:
      out.type = reply::kind::error;
      break;
    case REDIS_REPLY_INTEGER:
      out.type = reply::kind::integer;
      out.integer = from.integer;
      return out;
    case REDIS_REPLY_ARRAY:
      out.type = reply::kind::array;
      out.elements.reserve(from.elements);
      for (std::size_t i = 0; i < from.elements; ++i) {
        out.elements.push_back(from.element[i] ? copy_reply(*from.element[i]) : reply{});
      }
      return out;
    default:
      return out;  // nil
  }
  if (from.str != nullptr) out.text.assign(from.str, from.len);
  return out;
}

void limit_reply_elements(redisReader& reader) {
  static const bool once = [&] {
    hiredis_functions = reader.fn;
    limited_functions = *reader.fn;
    limited_functions.createArray = &create_limited_array;
    return true;
  }();
  (void)once;
  if (reader.fn == hiredis_functions) reader.fn = &limited_functions;
}

const std::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace galaxies::registry::redis
