// libFuzzer target for the wire layer: arbitrary bytes through the frame parser and every decoder.
// Beyond "no crash, no out-of-bounds read" (AddressSanitizer, UBSan), it checks these properties
// and traps when they fail: the parser only returns frames inside its input; its answer on a
// prefix of the input agrees with its answer on the whole (need-more until the frame is complete,
// a header error as soon as the header is there); whatever decodes re-encodes to a frame that
// decodes to the same values; and the sample a protocol violation is logged with is printable,
// bounded and says exactly which bytes came.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/endian.hpp"
#include "transport/protocol_log.hpp"
#include "wire/control.hpp"
#include "wire/groups.hpp"
#include "wire/message.hpp"
#include "wire/message_batch.hpp"

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

// What the parser says about the first `k` bytes of an input on which it answered `whole`.
void check_prefixes(const frame_parser& parser, std::span<const std::byte> input,
                    const parse_result& whole) {
  const bool header_error =
      whole.state == parse_result::status::error &&
      (whole.error == decode_error::frame_too_small ||
       whole.error == decode_error::frame_too_large || whole.error == decode_error::unknown_type);
  const std::size_t total =
      whole.state == parse_result::status::frame ? whole.frame.bytes.size() : input.size();
  for (const std::size_t k : {std::size_t{0}, header_size - 1, header_size, total - 1}) {
    if (k >= total) continue;
    const parse_result part = parser.parse(input.first(k));
    if (k < header_size) {
      require(part.state == parse_result::status::need_more && part.needed == 0);
    } else if (whole.state == parse_result::status::frame) {
      // The header was good on the whole input, so a prefix only lacks bytes.
      require(part.state == parse_result::status::need_more && part.needed == total);
    } else if (whole.state == parse_result::status::need_more) {
      require(part.state == parse_result::status::need_more && part.needed == whole.needed);
    } else if (header_error) {
      // Known as soon as the header is there: the body is never awaited.
      require(part.state == parse_result::status::error && part.error == whole.error);
    }
  }
}

// escaped_sample: printable ASCII only, at most 32 input bytes shown (4 characters each, "..."
// when cut), and unescaping it gives back exactly the bytes shown.
void check_sample(std::span<const std::byte> input) {
  const std::string sample = galaxies::transport::escaped_sample(input);
  const std::size_t shown = std::min<std::size_t>(input.size(), 32);
  require(sample.size() <= shown * 4 + 3);
  std::string text = sample;
  if (input.size() > shown) {
    require(text.size() >= 3 && text.compare(text.size() - 3, 3, "...") == 0);
    text.resize(text.size() - 3);
  }
  std::vector<std::byte> back;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    require(c >= 0x20 && c < 0x7f);
    if (c != '\\') {
      require(c != '"');
      back.push_back(std::byte{c});
      continue;
    }
    require(i + 3 < text.size());
    require(text[i + 1] == 'x');
    auto hex = [](char h) { return h <= '9' ? h - '0' : h - 'a' + 10; };
    back.push_back(static_cast<std::byte>(hex(text[i + 2]) * 16 + hex(text[i + 3])));
    i += 3;
  }
  require(back.size() == shown && std::equal(back.begin(), back.end(), input.begin()));
}

std::uint32_t load_le_u32(const std::byte* at) {
  return galaxies::base::load_le<std::uint32_t>(at);
}

frame_view reparse(const std::vector<std::byte>& encoded) {
  const parse_result r = frame_parser(0xffffffff).parse(encoded);
  require(r.state == parse_result::status::frame && r.frame.bytes.size() == encoded.size());
  return r.frame;
}

void check_message(const frame_view& frame) {
  message_view m;
  const std::error_code decoded = decode_message(frame, m);
  // What a master checks on arrival is what the receiver's decode demands.
  if (frame.header.type != frame_type::send_batch && frame.header.type != frame_type::publish)
    require(check_message_body(frame) == decoded);
  if (decoded) return;
  require(!check_message_frame(frame));
  require(peek_src(frame) == m.src && peek_dst(frame) == m.dst);
  require(peek_request_id(frame) == m.request_id);
  std::vector<std::byte> again;
  require(!append_message(again, m.type, m.src, m.dst, m.request_id, m.word, m.command, m.payload,
                          static_cast<std::uint32_t>(frame.bytes.size())));
  message_view n;
  require(!decode_message(reparse(again), n));
  require(n.type == m.type && n.src == m.src && n.dst == m.dst && n.request_id == m.request_id &&
          n.word == m.word && n.command == m.command &&
          std::equal(n.payload.begin(), n.payload.end(), m.payload.begin(), m.payload.end()));
}

// A batch that checks reads as its messages, each inside the frame; grown again from them as a
// sender grows one, it reads as the same messages. Routers and receivers agree on what is valid.
void check_send_batch(const frame_view& frame) {
  if (frame.header.type != frame_type::send_batch || check_message_frame(frame)) return;
  require(check_message_body(frame) == check_batch(frame));
  if (check_batch(frame)) return;
  std::vector<std::pair<std::string_view, std::span<const std::byte>>> messages;
  batch_reader reader(frame);
  std::string_view command;
  std::span<const std::byte> payload;
  while (reader.next(command, payload)) {
    require(!command.empty() && command.size() <= limits::max_command_size);
    messages.emplace_back(command, payload);
  }
  require(messages.size() == load_le_u32(frame.bytes.data() + 48));
  if (messages.size() < 2) return;
  std::vector<std::byte> again;
  require(!append_message(again, frame_type::send, peek_src(frame), peek_dst(frame), 0, 0,
                          messages[0].first, messages[0].second, 0xffffffff));
  for (std::size_t i = 1; i < messages.size(); ++i)
    append_to_batch(again, 0, messages[i].first, messages[i].second, 0);
  require(again.size() == frame.bytes.size());
  batch_reader reread(reparse(again));
  for (const auto& [c, p] : messages) {
    require(reread.next(command, payload));
    require(command == c && std::equal(payload.begin(), payload.end(), p.begin(), p.end()));
  }
}

// A publish that decodes lists distinct members, none nil nor its publisher, inside the frame; the
// master's check and the node's agree; encoded again from its fields, it is the same frame but for
// the bytes that are zero by rule (40..47, the reserved 53..55) and its flags.
void check_publish(const frame_view& frame) {
  publish_view p;
  const std::error_code decoded = decode_publish(frame, p, limits::max_membership_entries);
  if (frame.header.type != frame_type::publish) return require(bool(decoded));
  require(check_message_body(frame) == decoded);
  if (decoded) return;
  require(p.members.data() >= frame.bytes.data() + publish_header_size &&
          p.members.data() + p.members.size() <= frame.bytes.data() + frame.bytes.size() &&
          p.members.size() % uuid::size == 0);
  require(p.count() >= 1 && !p.lists(p.src) && !p.lists(node_id{}));
  std::vector<node_id> members;
  for (std::size_t i = 0; i < p.count(); ++i) members.push_back(p.member(i));
  std::vector<std::byte> again;
  require(!append_publish(again, p.src, p.dst, p.command, p.group, members, p.payload, 0xffffffff,
                          static_cast<std::uint8_t>(frame.bytes[5])));
  require(again.size() == frame.bytes.size());
  for (std::size_t i = 0; i < again.size(); ++i)
    require(again[i] == frame.bytes[i] || (i >= 40 && i < 48) || (i >= 53 && i < 56));
}

struct listed_groups {
  std::vector<group_entry> entries;
  bool snapshot = false;
  bool operator==(const listed_groups&) const = default;
};

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
  check_send_batch(frame);
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
  check_publish(frame);
  check_round_trip<listed_groups>(
      frame,
      [](const frame_view& f, listed_groups& v) {
        return decode_groups_up(f, v.entries, v.snapshot);
      },
      [](std::vector<std::byte>& out, const listed_groups& v) {
        append_groups_up(out, v.entries, v.snapshot);
      });
  check_round_trip<std::vector<group_entry>>(frame, decode_groups_down, append_groups_down);
  auth_value auth{};
  if (!decode_auth_value(frame, auth)) {
    const bool challenge = frame.header.type == frame_type::auth_challenge;
    require(challenge || frame.header.type == frame_type::auth_proof);
    std::vector<std::byte> again;
    (challenge ? append_auth_challenge : append_auth_proof)(again, auth);
    auth_value auth_again{};
    require(!decode_auth_value(reparse(again), auth_again) && auth_again == auth);
  }

  // Both frames that carry a JSON document give it back; every other frame gives nothing.
  const std::string_view json = status_json(frame);
  const bool reply = frame.header.type == frame_type::status_reply;
  const bool event = frame.header.type == frame_type::watch_event;
  require(reply || event || json.empty());
  if (reply || event) {
    std::vector<std::byte> again;
    (reply ? append_status_reply : append_watch_event)(again, json);
    require(status_json(reparse(again)) == json);
  }
  if (frame.header.type == frame_type::probe || frame.header.type == frame_type::probe_reply) {
    const std::uint64_t token = decode_probe_token(frame);
    std::vector<std::byte> again;
    (frame.header.type == frame_type::probe ? append_probe : append_probe_reply)(again, token);
    // Flags and aux are not the probe's (a peer's stray bits are ignored): the token is.
    require(decode_probe_token(reparse(again)) == token);
  }
  if (frame.header.type == frame_type::stopping) {
    const std::uint32_t grace = decode_stopping(frame);
    std::vector<std::byte> again;
    append_stopping(again, grace);
    require(decode_stopping(reparse(again)) == grace);
  }
  // A slot a decoder let through is one a host may have, or none (protocol.md §5).
  std::vector<node_entry> nodes;
  bool snapshot = false;
  if (!decode_nodes_up(frame, nodes, snapshot))
    for (const node_entry& n : nodes)
      require(n.slot == no_slot || n.slot < galaxies::limits::max_workers_per_host);
  welcome w;
  if (!decode_welcome(frame, w))
    require(!w.slot || *w.slot < galaxies::limits::max_workers_per_host);
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
    check_prefixes(parser, rest, r);
    if (r.state != parse_result::status::frame) {
      // What a link logs when it refuses the peer's bytes.
      if (r.state == parse_result::status::error) check_sample(rest);
      break;
    }
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
