// libFuzzer target for the wire layer: arbitrary bytes through the frame parser and every decoder.
// Beyond "no crash, no out-of-bounds read" (AddressSanitizer), it checks two properties and traps
// when they fail: the parser only returns frames inside its input, and whatever decodes re-encodes
// to a frame that decodes to the same values.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/endian.hpp"
#include "wire/control.hpp"
#include "wire/message.hpp"

namespace galaxies::wire {
namespace {

void require(bool condition) {
  if (!condition) __builtin_trap();
}

// A parsed frame is the front of the parser's input, never more than it.
void require_in(std::span<const std::byte> frame, std::span<const std::byte> input) {
  require(frame.data() == input.data() && frame.size() <= input.size() &&
          frame.size() >= header_size);
}

frame_view reparse(const std::vector<std::byte>& encoded) {
  const parse_result r = frame_parser(0xffffffff).parse(encoded);
  require(r.state == parse_result::status::frame && r.frame.bytes.size() == encoded.size());
  return r.frame;
}

void check_message(const frame_view& frame) {
  message_view m;
  if (decode_message(frame, m)) return;
  require(!check_message_frame(frame));
  require(peek_src(frame) == m.src && peek_dst(frame) == m.dst);
  require(peek_request_id(frame) == m.request_id);
  std::vector<std::byte> again;
  require(!append_message(again, m.type, m.src, m.dst, m.request_id, m.word, m.command, m.payload,
                          static_cast<std::uint32_t>(frame.bytes.size())));
  message_view n;
  require(!decode_message(reparse(again), n));
  require(n.type == m.type && n.src == m.src && n.dst == m.dst && n.request_id == m.request_id &&
          n.word == m.word && n.command == m.command && n.payload.size() == m.payload.size());
}

template <class Value, class Decode, class Encode>
void check_round_trip(const frame_view& frame, Decode decode, Encode encode) {
  Value value{};
  if (decode(frame, value)) return;
  std::vector<std::byte> again;
  encode(again, value);
  Value value_again{};
  require(!decode(reparse(again), value_again));
  require(value_again == value);
}

struct listed_nodes {
  std::vector<node_entry> entries;
  bool snapshot = false;
  bool operator==(const listed_nodes&) const = default;
};
struct listed_hosts {
  std::vector<host_entry> entries;
  bool snapshot = false;
  bool operator==(const listed_hosts&) const = default;
};

// Every decoder sees every frame: those of another type must refuse it without reading past it.
void exercise(const frame_view& frame) {
  check_message(frame);
  check_round_trip<hello>(frame, decode_hello, append_hello);
  check_round_trip<welcome>(frame, decode_welcome, append_welcome);
  check_round_trip<refuse>(frame, decode_refuse, append_refuse);
  check_round_trip<leave_reason>(frame, decode_goodbye, append_goodbye);
  check_round_trip<listed_nodes>(
      frame,
      [](const frame_view& f, listed_nodes& v) {
        return decode_nodes_up(f, v.entries, v.snapshot);
      },
      [](std::vector<std::byte>& out, const listed_nodes& v) {
        append_nodes_up(out, v.entries, v.snapshot);
      });
  check_round_trip<std::vector<node_down_entry>>(frame, decode_nodes_down, append_nodes_down);
  check_round_trip<listed_hosts>(
      frame,
      [](const frame_view& f, listed_hosts& v) {
        return decode_hosts_up(f, v.entries, v.snapshot);
      },
      [](std::vector<std::byte>& out, const listed_hosts& v) {
        append_hosts_up(out, v.entries, v.snapshot);
      });
  check_round_trip<std::vector<host_down_entry>>(frame, decode_hosts_down, append_hosts_down);
  (void)status_json(frame);
}

}  // namespace
}  // namespace galaxies::wire

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace galaxies::wire;
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);

  // As a stream: frames back to back until the parser wants more or refuses. A small maximum on
  // odd first bytes exercises the size limit as well.
  const bool small = size > 0 && (data[0] & 1) != 0;
  const frame_parser parser(small ? galaxies::limits::min_max_frame_size
                                  : galaxies::limits::default_max_frame_size);
  std::span<const std::byte> rest = input;
  for (;;) {
    const parse_result r = parser.parse(rest);
    if (r.state != parse_result::status::frame) break;
    require_in(r.frame.bytes, rest);
    exercise(r.frame);
    rest = rest.subspan(r.frame.bytes.size());
  }

  // As the body of each type, so the decoders are reached without the fuzzer first having to
  // discover a consistent header. The input's first byte picks the type.
  if (size > 0 && size <= 0xffff) {
    const std::uint8_t type = data[0];
    if (!is_known(type)) return 0;
    std::vector<std::byte> frame(header_size);
    galaxies::base::store_le(frame.data(), static_cast<std::uint32_t>(size - 1 + 4));
    galaxies::base::store_le(frame.data() + 4, type);
    frame.insert(frame.end(), input.begin() + 1, input.end());
    // The message checks need aux: take it from the body's first two bytes when there are some.
    if (size >= 3)
      galaxies::base::store_le(frame.data() + 6,
                               galaxies::base::load_le<std::uint16_t>(frame.data() + 8));
    const parse_result r = frame_parser(0xffffffff).parse(frame);
    if (r.state == parse_result::status::frame) exercise(r.frame);
  }
  return 0;
}
