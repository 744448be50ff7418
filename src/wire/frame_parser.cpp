// The frame header and the incremental parser (docs/protocol.md §2).
#include <string>

#include "base/endian.hpp"
#include "wire/credit.hpp"
#include "wire/frame.hpp"
#include "wire/message.hpp"

namespace galaxies::wire {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "galaxies.wire"; }

  std::string message(int value) const override {
    switch (static_cast<decode_error>(value)) {
      case decode_error::frame_too_small:
        return "frame size field below 4";
      case decode_error::frame_too_large:
        return "frame larger than the maximum frame size";
      case decode_error::unknown_type:
        return "unknown frame type";
      case decode_error::bad_message:
        return "malformed message frame";
      case decode_error::bad_handshake:
        return "malformed handshake frame";
      case decode_error::bad_membership:
        return "malformed membership frame";
      case decode_error::bad_body:
        return "frame body has the wrong size";
    }
    return "unknown wire error " + std::to_string(value);
  }
};

parse_result failure(decode_error e) noexcept {
  parse_result result;
  result.state = parse_result::status::error;
  result.error = e;
  return result;
}

// Types whose body has one legal size; anything else is refused here so that no later stage has to
// remember to check. Variable bodies are left to their decoders.
std::error_code check_fixed_body(const frame_view& frame) noexcept {
  std::size_t expected = 0;
  switch (frame.header.type) {
    case frame_type::heartbeat:  // empty, or the sender's lateness (u32 ms, protocol.md §8.1)
      return frame.bytes.size() == header_size || frame.bytes.size() == header_size + 4
                 ? std::error_code{}
                 : decode_error::bad_body;
    case frame_type::status_request:
    case frame_type::watch_request:
      expected = 0;
      break;
    case frame_type::goodbye:
      expected = 1;
      break;
    case frame_type::auth_challenge:
    case frame_type::auth_proof:
      expected = 32;
      break;
    case frame_type::credit:
      expected = credit_frame_size - header_size;
      break;
    case frame_type::probe:
    case frame_type::probe_reply:
      expected = 8;
      break;
    case frame_type::stopping:
      expected = 4;
      break;
    case frame_type::fragment:  // a slice of at least one byte
      return frame.bytes.size() > header_size ? std::error_code{} : decode_error::bad_body;
    default:
      return {};
  }
  if (frame.bytes.size() != header_size + expected) return decode_error::bad_body;
  return {};
}

}  // namespace

const std::error_category& wire_category() noexcept {
  static const category instance;
  return instance;
}

bool is_known(std::uint8_t type) noexcept {
  switch (static_cast<frame_type>(type)) {
    case frame_type::hello:
    case frame_type::welcome:
    case frame_type::refuse:
    case frame_type::heartbeat:
    case frame_type::goodbye:
    case frame_type::auth_challenge:
    case frame_type::auth_proof:
    case frame_type::probe:
    case frame_type::probe_reply:
    case frame_type::stopping:
    case frame_type::nodes_up:
    case frame_type::nodes_down:
    case frame_type::hosts_up:
    case frame_type::hosts_down:
    case frame_type::groups_up:
    case frame_type::groups_down:
    case frame_type::send:
    case frame_type::request:
    case frame_type::reply:
    case frame_type::broadcast:
    case frame_type::credit:
    case frame_type::fragment:
    case frame_type::send_batch:
    case frame_type::publish:
    case frame_type::status_request:
    case frame_type::status_reply:
    case frame_type::watch_request:
    case frame_type::watch_event:
      return true;
  }
  return false;
}

const char* to_string(frame_type type) noexcept {
  switch (type) {
    case frame_type::hello:
      return "hello";
    case frame_type::welcome:
      return "welcome";
    case frame_type::refuse:
      return "refuse";
    case frame_type::heartbeat:
      return "heartbeat";
    case frame_type::goodbye:
      return "goodbye";
    case frame_type::auth_challenge:
      return "auth_challenge";
    case frame_type::auth_proof:
      return "auth_proof";
    case frame_type::probe:
      return "probe";
    case frame_type::probe_reply:
      return "probe_reply";
    case frame_type::stopping:
      return "stopping";
    case frame_type::nodes_up:
      return "nodes_up";
    case frame_type::nodes_down:
      return "nodes_down";
    case frame_type::hosts_up:
      return "hosts_up";
    case frame_type::hosts_down:
      return "hosts_down";
    case frame_type::groups_up:
      return "groups_up";
    case frame_type::groups_down:
      return "groups_down";
    case frame_type::send:
      return "send";
    case frame_type::request:
      return "request";
    case frame_type::reply:
      return "reply";
    case frame_type::broadcast:
      return "broadcast";
    case frame_type::credit:
      return "credit";
    case frame_type::fragment:
      return "fragment";
    case frame_type::send_batch:
      return "send_batch";
    case frame_type::publish:
      return "publish";
    case frame_type::status_request:
      return "status_request";
    case frame_type::status_reply:
      return "status_reply";
    case frame_type::watch_request:
      return "watch_request";
    case frame_type::watch_event:
      return "watch_event";
  }
  return "unknown";
}

void store_fragment_header(std::byte* out, std::size_t slice) noexcept {
  base::store_le(out, static_cast<std::uint32_t>(slice + min_size_field));
  out[4] = static_cast<std::byte>(frame_type::fragment);
  out[5] = std::byte{0};
  base::store_le(out + 6, std::uint16_t{0});
}

parse_result frame_parser::parse(std::span<const std::byte> input) const noexcept {
  if (input.size() < header_size) return {};

  const std::byte* p = input.data();
  frame_header header;
  header.size = base::load_le<std::uint32_t>(p);
  const auto type = base::load_le<std::uint8_t>(p + 4);
  header.flags = base::load_le<std::uint8_t>(p + 5);
  header.aux = base::load_le<std::uint16_t>(p + 6);

  // The header alone decides these, so a hostile size is refused before the body is awaited, let
  // alone buffered. 64-bit arithmetic: size + 4 must not wrap.
  if (header.size < min_size_field) return failure(decode_error::frame_too_small);
  if (std::uint64_t{header.size} + 4 > max_frame_size_)
    return failure(decode_error::frame_too_large);
  if (!is_known(type)) return failure(decode_error::unknown_type);
  header.type = static_cast<frame_type>(type);

  if (input.size() < header.total()) {
    parse_result result;
    result.needed = header.total();
    return result;
  }

  const frame_view frame{header, input.first(header.total())};
  const std::error_code ec =
      is_message(header.type) ? check_message_frame(frame) : check_fixed_body(frame);
  if (ec) {
    parse_result result;
    result.state = parse_result::status::error;
    result.error = ec;
    return result;
  }

  parse_result result;
  result.state = parse_result::status::frame;
  result.frame = frame;
  return result;
}

}  // namespace galaxies::wire
