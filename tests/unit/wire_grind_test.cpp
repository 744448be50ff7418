// A seeded, deterministic grind: random valid frames of every type must round-trip through
// encode -> parse (in random pieces) -> decode, and random mutations of them must never crash: each
// mutated frame either decodes (and then re-encodes to the same values) or gives a wire error.
#include <gtest/gtest.h>

#include <random>
#include <variant>

#include "base/endian.hpp"
#include "unit/wire_test_frames.hpp"
#include "wire/control.hpp"
#include "wire/credit.hpp"
#include "wire/groups.hpp"
#include "wire/message.hpp"
#include "wire/message_batch.hpp"

namespace galaxies::wire {
namespace {

using namespace galaxies::wire::test;

struct message_value {
  frame_type type{};
  node_id src;
  node_id dst;
  std::uint64_t request_id = 0;
  std::uint32_t word = 0;
  std::string command;
  std::vector<std::byte> payload;
  friend bool operator==(const message_value&, const message_value&) = default;
};
struct batch_value {
  node_id src;
  node_id dst;
  std::vector<std::pair<std::string, std::vector<std::byte>>> messages;
  friend bool operator==(const batch_value&, const batch_value&) = default;
};
struct nodes_up_value {
  std::vector<node_entry> nodes;
  bool snapshot = false;
  friend bool operator==(const nodes_up_value&, const nodes_up_value&) = default;
};
struct hosts_up_value {
  std::vector<host_entry> hosts;
  bool snapshot = false;
  friend bool operator==(const hosts_up_value&, const hosts_up_value&) = default;
};
struct goodbye_value {
  leave_reason reason{};
  friend bool operator==(const goodbye_value&, const goodbye_value&) = default;
};
struct heartbeat_value {
  std::uint32_t lateness_ms = 0;  // 0: the bodiless heartbeat
  friend bool operator==(const heartbeat_value&, const heartbeat_value&) = default;
};
struct status_request_value {
  friend bool operator==(const status_request_value&, const status_request_value&) = default;
};
struct status_reply_value {
  std::string json;
  friend bool operator==(const status_reply_value&, const status_reply_value&) = default;
};
struct probe_value {
  frame_type type{};  // probe or probe_reply
  std::uint64_t token = 0;
  friend bool operator==(const probe_value&, const probe_value&) = default;
};
struct stopping_value {
  std::uint32_t grace_ms = 0;
  friend bool operator==(const stopping_value&, const stopping_value&) = default;
};
struct watch_request_value {
  friend bool operator==(const watch_request_value&, const watch_request_value&) = default;
};
struct watch_event_value {
  std::string json;
  friend bool operator==(const watch_event_value&, const watch_event_value&) = default;
};
struct fragment_value {  // a slice of a larger frame: opaque bytes at this layer
  std::vector<std::byte> slice;
  friend bool operator==(const fragment_value&, const fragment_value&) = default;
};
struct groups_value {
  frame_type type{};  // groups_up or groups_down
  std::vector<group_entry> entries;
  bool snapshot = false;  // groups_up only
  friend bool operator==(const groups_value&, const groups_value&) = default;
};
struct publish_value {
  node_id src;
  host_id dst;
  std::string command;
  std::string group;
  std::vector<node_id> members;
  std::vector<std::byte> payload;
  friend bool operator==(const publish_value&, const publish_value&) = default;
};
struct auth_frame_value {
  frame_type type{};  // auth_challenge or auth_proof
  auth_value value{};
  friend bool operator==(const auth_frame_value&, const auth_frame_value&) = default;
};

using frame_value =
    std::variant<message_value, hello, welcome, refuse, goodbye_value, heartbeat_value,
                 nodes_up_value, std::vector<node_down_entry>, hosts_up_value,
                 std::vector<host_down_entry>, status_request_value, status_reply_value,
                 auth_frame_value, credit_grant, fragment_value, batch_value, watch_request_value,
                 watch_event_value, probe_value, stopping_value, groups_value, publish_value>;

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

void encode(std::vector<std::byte>& out, const frame_value& value) {
  std::visit(
      overloaded{
          [&](const message_value& m) {
            ASSERT_FALSE(append_message(out, m.type, m.src, m.dst, m.request_id, m.word, m.command,
                                        m.payload, limits::default_max_frame_size));
          },
          [&](const batch_value& b) {
            // Grown as a sender grows one; a batch of one (which no sender makes, but a peer may
            // send) is the first message's send frame made a batch by hand.
            const std::size_t start = out.size();
            const auto& [command, payload] = b.messages.front();
            ASSERT_FALSE(append_message(out, frame_type::send, b.src, b.dst, 0, 0, command, payload,
                                        limits::default_max_frame_size));
            if (b.messages.size() == 1) {
              const std::size_t body = out.size() - start - message_header_size;
              out.insert(out.begin() + static_cast<std::ptrdiff_t>(start + message_header_size),
                         batch_entry_header_size, std::byte{0});
              std::byte* frame = out.data() + start;
              base::store_le(frame, static_cast<std::uint32_t>(out.size() - start - 4));
              frame[4] = static_cast<std::byte>(frame_type::send_batch);
              base::store_le(frame + 6, std::uint16_t{0});
              base::store_le(frame + 48, std::uint32_t{1});
              base::store_le(frame + message_header_size,
                             static_cast<std::uint16_t>(command.size()));
              base::store_le(frame + message_header_size + 4,
                             static_cast<std::uint32_t>(body - command.size()));
            }
            for (std::size_t i = 1; i < b.messages.size(); ++i)
              append_to_batch(out, start, b.messages[i].first, b.messages[i].second, 0);
          },
          [&](const hello& h) { append_hello(out, h); },
          [&](const welcome& w) { append_welcome(out, w); },
          [&](const refuse& r) { append_refuse(out, r); },
          [&](const goodbye_value& g) { append_goodbye(out, g.reason); },
          [&](const heartbeat_value& h) {
            if (h.lateness_ms == 0)
              append_heartbeat(out);
            else
              append_heartbeat(out, h.lateness_ms);
          },
          [&](const nodes_up_value& n) { append_nodes_up(out, n.nodes, n.snapshot); },
          [&](const std::vector<node_down_entry>& n) { append_nodes_down(out, n); },
          [&](const hosts_up_value& h) { append_hosts_up(out, h.hosts, h.snapshot); },
          [&](const std::vector<host_down_entry>& h) { append_hosts_down(out, h); },
          [&](const status_request_value&) { append_status_request(out); },
          [&](const status_reply_value& s) { append_status_reply(out, s.json); },
          [&](const watch_request_value&) { append_watch_request(out); },
          [&](const stopping_value& s) { append_stopping(out, s.grace_ms); },
          [&](const probe_value& p) {
            if (p.type == frame_type::probe)
              append_probe(out, p.token);
            else
              append_probe_reply(out, p.token);
          },
          [&](const watch_event_value& s) { append_watch_event(out, s.json); },
          [&](const groups_value& g) {
            if (g.type == frame_type::groups_up)
              append_groups_up(out, g.entries, g.snapshot);
            else
              append_groups_down(out, g.entries);
          },
          [&](const publish_value& p) {
            ASSERT_FALSE(append_publish(out, p.src, p.dst, p.command, p.group, p.members, p.payload,
                                        limits::default_max_frame_size));
          },
          [&](const credit_grant& c) { append_credit(out, c); },
          [&](const fragment_value& f) {
            const std::size_t at = out.size();
            out.resize(at + header_size);
            store_fragment_header(out.data() + at, f.slice.size());
            out.insert(out.end(), f.slice.begin(), f.slice.end());
          },
          [&](const auth_frame_value& a) {
            if (a.type == frame_type::auth_challenge)
              append_auth_challenge(out, a.value);
            else
              append_auth_proof(out, a.value);
          },
      },
      value);
}

// Decodes any frame with the decoder its type calls for.
std::error_code decode(const frame_view& frame, frame_value& out) {
  std::error_code ec;
  switch (frame.header.type) {
    case frame_type::send:
    case frame_type::request:
    case frame_type::reply:
    case frame_type::broadcast: {
      message_view view;
      ec = decode_message(frame, view);
      out = message_value{view.type,
                          view.src,
                          view.dst,
                          view.request_id,
                          view.word,
                          std::string(view.command),
                          {view.payload.begin(), view.payload.end()}};
      return ec;
    }
    case frame_type::send_batch: {
      if ((ec = check_batch(frame))) return ec;
      auto& b = out.emplace<batch_value>();
      b.src = peek_src(frame);
      b.dst = peek_dst(frame);
      batch_reader reader(frame);
      std::string_view command;
      std::span<const std::byte> payload;
      while (reader.next(command, payload))
        b.messages.emplace_back(std::string(command),
                                std::vector<std::byte>(payload.begin(), payload.end()));
      return {};
    }
    case frame_type::hello:
      return decode_hello(frame, out.emplace<hello>());
    case frame_type::welcome:
      return decode_welcome(frame, out.emplace<welcome>());
    case frame_type::refuse:
      return decode_refuse(frame, out.emplace<refuse>());
    case frame_type::goodbye:
      return decode_goodbye(frame, out.emplace<goodbye_value>().reason);
    case frame_type::heartbeat:
      out = heartbeat_value{decode_heartbeat(frame)};
      return {};
    case frame_type::probe:
    case frame_type::probe_reply:
      out = probe_value{frame.header.type, decode_probe_token(frame)};
      return {};
    case frame_type::stopping:
      out = stopping_value{decode_stopping(frame)};
      return {};
    case frame_type::nodes_up: {
      auto& v = out.emplace<nodes_up_value>();
      return decode_nodes_up(frame, v.nodes, v.snapshot);
    }
    case frame_type::nodes_down:
      return decode_nodes_down(frame, out.emplace<std::vector<node_down_entry>>());
    case frame_type::hosts_up: {
      auto& v = out.emplace<hosts_up_value>();
      return decode_hosts_up(frame, v.hosts, v.snapshot);
    }
    case frame_type::hosts_down:
      return decode_hosts_down(frame, out.emplace<std::vector<host_down_entry>>());
    case frame_type::groups_up: {
      auto& v = out.emplace<groups_value>();
      v.type = frame_type::groups_up;
      return decode_groups_up(frame, v.entries, v.snapshot);
    }
    case frame_type::groups_down: {
      auto& v = out.emplace<groups_value>();
      v.type = frame_type::groups_down;
      return decode_groups_down(frame, v.entries);
    }
    case frame_type::publish: {
      publish_view view;
      if ((ec = decode_publish(frame, view, limits::max_membership_entries))) return ec;
      auto& v = out.emplace<publish_value>();
      v.src = view.src;
      v.dst = view.dst;
      v.command = view.command;
      v.group = view.group;
      for (std::size_t i = 0; i < view.count(); ++i) v.members.push_back(view.member(i));
      v.payload.assign(view.payload.begin(), view.payload.end());
      return {};
    }
    case frame_type::status_request:
      out = status_request_value{};
      return {};
    case frame_type::status_reply:
      out = status_reply_value{std::string(status_json(frame))};
      return {};
    case frame_type::watch_request:
      out = watch_request_value{};
      return {};
    case frame_type::watch_event:
      out = watch_event_value{std::string(status_json(frame))};
      return {};
    case frame_type::auth_challenge:
    case frame_type::auth_proof: {
      auto& v = out.emplace<auth_frame_value>();
      v.type = frame.header.type;
      return decode_auth_value(frame, v.value);
    }
    case frame_type::credit:
      return decode_credit(frame, out.emplace<credit_grant>());
    case frame_type::fragment: {
      const auto body = frame.body();
      out = fragment_value{{body.begin(), body.end()}};
      return {};
    }
  }
  return decode_error::unknown_type;
}

class generator {
 public:
  explicit generator(std::uint64_t seed) : rng_(seed) {}

  template <class T>
  T between(T low, T high) {
    return static_cast<T>(std::uniform_int_distribution<std::uint64_t>(low, high)(rng_));
  }
  bool coin() { return between(0, 1) == 1; }

  // Any bytes: what payloads, status documents and commands may hold (within UTF-8 for those).
  std::string text(std::size_t min, std::size_t max) {
    std::string out(between(min, max), '\0');
    for (char& c : out) c = static_cast<char>(between(0, 255));
    return out;
  }
  // Valid UTF-8 of min..max bytes, control characters included or not.
  std::string utf8(std::size_t min, std::size_t max, bool controls) {
    static const char* const pieces[] = {
        "a",  "Z",    "0",   ":", "-", " ", ".", "\xc3\xa9", "\xe6\xbc\xa2", "\xf0\x9f\x98\x80",
        "\t", "\x1b", "\x7f"};
    const std::size_t choices = controls ? std::size(pieces) : std::size(pieces) - 3;
    const std::size_t size = between(min, max);
    std::string out;
    while (out.size() < size) {
      const std::string_view piece = pieces[between<std::size_t>(0, choices - 1)];
      if (out.size() + piece.size() > size) {
        out.append(size - out.size(), 'x');
        break;
      }
      out += piece;
    }
    return out;
  }
  std::string name(std::size_t min, std::size_t max) { return utf8(min, max, false); }
  std::optional<auth_value> maybe_auth() {
    if (coin()) return std::nullopt;
    auth_value v;
    for (auto& b : v) b = static_cast<std::byte>(between(0, 255));
    return v;
  }
  std::vector<std::byte> blob(std::size_t max) {
    std::vector<std::byte> out(between<std::size_t>(0, max));
    for (std::byte& b : out) b = static_cast<std::byte>(between(0, 255));
    return out;
  }
  uuid id() {
    std::array<std::uint8_t, uuid::size> raw;
    for (auto& b : raw) b = between<std::uint8_t>(0, 255);
    return uuid(raw);
  }
  leave_reason reason() { return static_cast<leave_reason>(between(1, 8)); }
  std::optional<std::uint32_t> maybe_u32(std::uint32_t min) {
    if (coin()) return std::nullopt;
    return between<std::uint32_t>(min, 0xffffffff);
  }

  frame_value frame() {
    switch (between(0, 17)) {
      case 0: {
        message_value m;
        m.type = static_cast<frame_type>(between(0x20, 0x23));
        m.src = node_id(id());
        m.dst = node_id(id());
        const bool has_id = m.type == frame_type::request || m.type == frame_type::reply;
        m.request_id = has_id ? between<std::uint64_t>(1, ~std::uint64_t{0}) : 0;
        m.word = between<std::uint32_t>(0, 0xffffffff);
        m.command = m.type == frame_type::reply ? "" : utf8(1, limits::max_command_size, true);
        m.payload = blob(300);
        return m;
      }
      case 1: {
        hello h;
        h.version = between<std::uint16_t>(0, 0xffff);
        h.role = static_cast<role>(between(1, 4));
        h.sender = id();
        h.target = coin() ? uuid{} : id();
        h.pid = between<std::uint32_t>(0, 0xffffffff);
        h.cluster = name(1, limits::max_cluster_name);
        h.listen = h.role == role::host ? name(1, 40) : name(0, 40);
        h.max_frame = maybe_u32(limits::min_max_frame_size);
        h.heartbeat_ms = maybe_u32(0);
        h.hostname = name(0, 30);
        h.flow_window = maybe_u32(limits::min_flow_window);
        h.flow_budget = maybe_u32(0);
        h.lateness = maybe_u32(0);
        h.auth_nonce = maybe_auth();
        return h;
      }
      case 2: {
        welcome w;
        w.version = between<std::uint16_t>(0, 0xffff);
        w.host = host_id(id());
        w.pid = between<std::uint32_t>(0, 0xffffffff);
        w.cluster = name(0, limits::max_cluster_name);
        w.listen = name(0, 40);
        w.max_frame = maybe_u32(limits::min_max_frame_size);
        w.heartbeat_ms = maybe_u32(0);
        w.hostname = name(0, 30);
        w.flow_window = maybe_u32(limits::min_flow_window);
        w.flow_budget = maybe_u32(0);
        w.lateness = maybe_u32(0);
        if (coin()) w.slot = between<std::uint32_t>(0, limits::max_workers_per_host - 1);
        w.auth_proof = maybe_auth();
        return w;
      }
      case 3:
        return refuse{static_cast<refuse_code>(between(1, 10)),
                      utf8(0, limits::max_refuse_text, true)};
      case 4:
        return goodbye_value{reason()};
      case 5:
        if (coin() && coin()) return stopping_value{between<std::uint32_t>(0, 0xffffffff)};
        if (coin())
          return probe_value{coin() ? frame_type::probe : frame_type::probe_reply,
                             between<std::uint64_t>(0, ~std::uint64_t{0})};
        return heartbeat_value{coin() ? 0 : between<std::uint32_t>(1, 0xffffffff)};
      case 6: {
        nodes_up_value v{{}, coin()};
        for (auto n = between(0, 20); n > 0; --n) {
          v.nodes.push_back(
              {node_id(id()), host_id(id()), between<std::uint32_t>(0, 0xffffffff),
               coin() ? no_slot : between<std::uint32_t>(0, limits::max_workers_per_host - 1)});
        }
        return v;
      }
      case 7: {
        std::vector<node_down_entry> v;
        for (auto n = between(0, 20); n > 0; --n) {
          v.push_back(
              {node_id(id()), reason(), between<std::int32_t>(0, 0x7fffffff) * (coin() ? -1 : 1)});
        }
        return v;
      }
      case 8: {
        hosts_up_value v{{}, coin()};
        for (auto n = between(0, 20); n > 0; --n) v.hosts.push_back({host_id(id()), name(1, 50)});
        return v;
      }
      case 9: {
        std::vector<host_down_entry> v;
        for (auto n = between(0, 20); n > 0; --n) v.push_back({host_id(id()), reason()});
        return v;
      }
      case 10:
        return coin() ? frame_value{status_request_value{}} : frame_value{watch_request_value{}};
      case 11: {
        auth_frame_value a;
        a.type = coin() ? frame_type::auth_challenge : frame_type::auth_proof;
        a.value = maybe_auth().value_or(auth_value{});
        return a;
      }
      case 12:
        return credit_grant{node_id(id()), node_id(id()), between<std::uint32_t>(0, 0xffffffff),
                            between<std::uint32_t>(1, 0xffffffff)};
      case 15: {
        batch_value b{node_id(id()), node_id(id()), {}};
        for (auto n = between(1, 12); n > 0; --n)
          b.messages.emplace_back(utf8(1, limits::max_command_size, true), blob(100));
        return b;
      }
      case 16: {
        groups_value g{coin() ? frame_type::groups_up : frame_type::groups_down, {}, false};
        g.snapshot = g.type == frame_type::groups_up && coin();
        for (auto n = between(0, 20); n > 0; --n)
          g.entries.push_back({node_id(id()), name(1, limits::max_group_name)});
        return g;
      }
      case 17: {
        publish_value p{node_id(id()),
                        host_id(id()),
                        utf8(1, limits::max_command_size, true),
                        name(1, limits::max_group_name),
                        {},
                        blob(200)};
        for (auto n = between(1, 40); n > 0; --n) p.members.push_back(node_id(id()));
        return p;
      }
      case 14: {
        const std::string bytes = text(1, 300);
        const auto* first = reinterpret_cast<const std::byte*>(bytes.data());
        return fragment_value{{first, first + bytes.size()}};
      }
      default:
        if (coin()) return watch_event_value{text(0, 200)};
        return status_reply_value{text(0, 200)};
    }
  }

  void mutate(std::vector<std::byte>& data) {
    for (auto n = between(1, 4); n > 0 && !data.empty(); --n) {
      const std::size_t at = between<std::size_t>(0, data.size() - 1);
      switch (between(0, 5)) {
        case 0:
          data[at] ^= static_cast<std::byte>(1u << between(0, 7));
          break;
        case 1:
          data[at] = static_cast<std::byte>(between(0, 255));
          break;
        case 2:
          data.resize(at);
          break;
        case 3:
          data.insert(data.begin() + static_cast<std::ptrdiff_t>(at),
                      static_cast<std::byte>(between(0, 255)));
          break;
        case 4:
          data.erase(data.begin() + static_cast<std::ptrdiff_t>(at),
                     data.begin() + static_cast<std::ptrdiff_t>(
                                        std::min(data.size(), at + between<std::size_t>(1, 8))));
          break;
        default: {
          // Header fields are where a parser is most easily fooled: hit one of the first 8 bytes.
          const std::size_t field = at % 8;
          if (field < data.size()) data[field] = static_cast<std::byte>(between(0, 255));
        }
      }
    }
  }

 private:
  std::mt19937_64 rng_;
};

TEST(WireGrind, RandomValidFramesRoundTrip) {
  generator gen(20240601);
  for (int round = 0; round < 200; ++round) {
    std::vector<frame_value> sent;
    std::vector<std::byte> stream;
    for (auto n = gen.between(1, 20); n > 0; --n) {
      sent.push_back(gen.frame());
      encode(stream, sent.back());
    }
    // Received in random pieces, as a socket would deliver them.
    std::vector<std::byte> buffer;
    std::vector<frame_value> received;
    frame_parser parser;
    for (std::size_t at = 0; at < stream.size();) {
      const std::size_t piece = std::min(stream.size() - at, gen.between<std::size_t>(1, 700));
      append(buffer, std::span(stream).subspan(at, piece));
      at += piece;
      std::size_t used = 0;
      for (;;) {
        const parse_result r = parser.parse(std::span(buffer).subspan(used));
        ASSERT_NE(r.state, parse_result::status::error) << r.error.message();
        if (r.state == parse_result::status::need_more) break;
        frame_value value;
        ASSERT_FALSE(decode(r.frame, value)) << to_string(r.frame.header.type);
        received.push_back(std::move(value));
        used += r.frame.bytes.size();
      }
      buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(used));
    }
    EXPECT_TRUE(buffer.empty());
    ASSERT_EQ(received.size(), sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) EXPECT_TRUE(received[i] == sent[i]) << i;
  }
}

TEST(WireGrind, MutatedFramesDecodeOrFailCleanly) {
  generator gen(77);
  int decoded = 0;
  int refused = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    std::vector<std::byte> data;
    for (auto n = gen.between(1, 3); n > 0; --n) encode(data, gen.frame());
    gen.mutate(data);

    frame_parser parser;
    std::span<const std::byte> rest(data);
    for (;;) {
      const parse_result r = parser.parse(rest);
      if (r.state == parse_result::status::need_more) break;
      if (r.state == parse_result::status::error) {
        ASSERT_EQ(r.error.category(), wire_category()) << iteration;
        ++refused;
        break;
      }
      frame_value value;
      if (const std::error_code ec = decode(r.frame, value)) {
        ASSERT_EQ(ec.category(), wire_category()) << iteration;
        ++refused;
        break;
      }
      ++decoded;
      // What decodes must re-encode to a frame carrying the same values.
      std::vector<std::byte> again;
      encode(again, value);
      frame_value value_again;
      ASSERT_FALSE(decode(parse_one(again), value_again)) << iteration;
      ASSERT_TRUE(value_again == value) << iteration;
      rest = rest.subspan(r.frame.bytes.size());
    }
  }
  // Both outcomes must actually occur, or the grind tested nothing.
  EXPECT_GT(decoded, 1000);
  EXPECT_GT(refused, 1000);
}

}  // namespace
}  // namespace galaxies::wire
