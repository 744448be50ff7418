// libFuzzer target for the handshake records (docs/protocol.md §3), both ways. The first byte
// picks a mode:
//   0, 1, 2  the rest is the body of a hello, welcome or refuse frame from a peer: whatever
//            decodes obeys the documented limits and re-encodes to a frame that decodes the same;
//   3, 4, 5  the rest seeds a hello, welcome or refuse we build and encode: it decodes back to
//            the same value exactly when the documented rules say it is valid.
// A failed property traps (a crash to libFuzzer) and leaves the input behind.
#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/endian.hpp"
#include "base/limits.hpp"
#include "base/text.hpp"
#include "wire/control.hpp"

namespace galaxies::wire {
namespace {

namespace limits = galaxies::limits;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

frame_view parse_whole(const std::vector<std::byte>& bytes) {
  const parse_result r = frame_parser(0xffffffff).parse(bytes);
  require(r.state == parse_result::status::frame && r.frame.bytes.size() == bytes.size());
  return r.frame;
}

std::vector<std::byte> frame_of(frame_type type, std::span<const std::byte> body) {
  std::vector<std::byte> frame(header_size);
  base::store_le(frame.data(), static_cast<std::uint32_t>(body.size() + min_size_field));
  base::store_le(frame.data() + 4, static_cast<std::uint8_t>(type));
  frame.insert(frame.end(), body.begin(), body.end());
  return frame;
}

bool valid_max_frame(const std::optional<std::uint32_t>& value) {
  return !value || *value >= limits::min_max_frame_size;
}

// A text record is omitted when empty; present, it must be a clean name within its limit.
bool valid_text_record(const std::string& value, std::size_t limit) {
  return value.empty() || base::is_clean_name(value, limit);
}

template <class Message>
bool valid_records(const Message& m) {
  return valid_text_record(m.cluster, limits::max_cluster_name) &&
         valid_text_record(m.listen, limits::max_address_size) &&
         valid_text_record(m.hostname, limits::max_hostname_size) && valid_max_frame(m.max_frame);
}

// ---- from a peer --------------------------------------------------------------------------

void peer_hello(std::span<const std::byte> body) {
  const auto frame = frame_of(frame_type::hello, body);
  hello h;
  if (decode_hello(parse_whole(frame), h)) return;
  require(!h.cluster.empty() && h.cluster.size() <= limits::max_cluster_name);
  require(h.role != role::host || !h.listen.empty());
  require(valid_max_frame(h.max_frame));
  std::vector<std::byte> again;
  append_hello(again, h);
  hello h2;
  require(!decode_hello(parse_whole(again), h2) && h2 == h);
}

void peer_welcome(std::span<const std::byte> body) {
  const auto frame = frame_of(frame_type::welcome, body);
  welcome w;
  if (decode_welcome(parse_whole(frame), w)) return;
  require(w.cluster.size() <= limits::max_cluster_name && valid_max_frame(w.max_frame));
  std::vector<std::byte> again;
  append_welcome(again, w);
  welcome w2;
  require(!decode_welcome(parse_whole(again), w2) && w2 == w);
}

void peer_refuse(std::span<const std::byte> body) {
  const auto frame = frame_of(frame_type::refuse, body);
  refuse r;
  if (decode_refuse(parse_whole(frame), r)) return;
  require(r.text.size() <= limits::max_refuse_text);
  std::vector<std::byte> again;
  append_refuse(again, r);
  refuse r2;
  require(!decode_refuse(parse_whole(again), r2) && r2 == r);
}

// ---- built here ---------------------------------------------------------------------------

uuid consume_uuid(FuzzedDataProvider& in) {
  std::array<std::uint8_t, uuid::size> raw{};
  in.ConsumeData(raw.data(), raw.size());
  return uuid(raw);
}

std::optional<std::uint32_t> consume_optional(FuzzedDataProvider& in) {
  if (!in.ConsumeBool()) return std::nullopt;
  // Mostly around the floor, where the rule is.
  return in.ConsumeBool() ? in.ConsumeIntegral<std::uint32_t>()
                          : in.ConsumeIntegralInRange<std::uint32_t>(
                                limits::min_max_frame_size - 2, limits::min_max_frame_size + 2);
}

template <class Message>
void consume_records(FuzzedDataProvider& in, Message& m) {
  m.cluster = in.ConsumeRandomLengthString(80);
  m.listen = in.ConsumeRandomLengthString(80);
  m.max_frame = consume_optional(in);
  m.heartbeat_ms =
      in.ConsumeBool() ? std::optional(in.ConsumeIntegral<std::uint32_t>()) : std::nullopt;
  m.hostname = in.ConsumeRandomLengthString(300);
}

std::optional<auth_value> consume_auth(FuzzedDataProvider& in) {
  if (!in.ConsumeBool()) return std::nullopt;
  auth_value value{};
  in.ConsumeData(value.data(), value.size());
  return value;
}

void built_hello(FuzzedDataProvider& in) {
  hello h;
  h.version = in.ConsumeIntegral<std::uint16_t>();
  h.role = static_cast<role>(in.ConsumeIntegralInRange<std::uint8_t>(1, 4));
  h.sender = consume_uuid(in);
  h.target = consume_uuid(in);
  h.pid = in.ConsumeIntegral<std::uint32_t>();
  consume_records(in, h);
  h.auth_nonce = consume_auth(in);
  std::vector<std::byte> encoded;
  append_hello(encoded, h);
  hello back;
  const bool valid =
      !h.cluster.empty() && (h.role != role::host || !h.listen.empty()) && valid_records(h);
  const bool decoded = !decode_hello(parse_whole(encoded), back);
  require(decoded == valid);
  require(!decoded || back == h);
}

void built_welcome(FuzzedDataProvider& in) {
  welcome w;
  w.version = in.ConsumeIntegral<std::uint16_t>();
  w.host = host_id(consume_uuid(in));
  w.pid = in.ConsumeIntegral<std::uint32_t>();
  consume_records(in, w);
  w.auth_proof = consume_auth(in);
  std::vector<std::byte> encoded;
  append_welcome(encoded, w);
  welcome back;
  const bool valid = valid_records(w);
  const bool decoded = !decode_welcome(parse_whole(encoded), back);
  require(decoded == valid);
  require(!decoded || back == w);
}

void built_refuse(FuzzedDataProvider& in) {
  refuse r;
  const auto code = in.ConsumeIntegralInRange<std::uint16_t>(0, 12);
  r.code = static_cast<refuse_code>(code);
  r.text = in.ConsumeRemainingBytesAsString();
  std::vector<std::byte> encoded;
  append_refuse(encoded, r);
  refuse back;
  const bool decoded = !decode_refuse(parse_whole(encoded), back);
  // The text is cut at a UTF-8 boundary, and must be valid UTF-8 to decode.
  const bool valid_text = base::is_valid_utf8(
      std::string_view(r.text).substr(0, std::min(r.text.size(), limits::max_refuse_text)));
  require(!decoded || (code >= 1 && code <= 10));
  if (code >= 1 && code <= 10 && r.text.size() <= limits::max_refuse_text)
    require(decoded == valid_text);
  if (!decoded) return;
  require(back.code == r.code);
  // The text is cut to the limit, at a UTF-8 boundary: a prefix, whole when it fits.
  require(back.text.size() <= limits::max_refuse_text && r.text.starts_with(back.text));
  require(r.text.size() > limits::max_refuse_text || back.text == r.text);
  if (back.text.size() < r.text.size()) {
    const auto next = static_cast<unsigned char>(r.text[back.text.size()]);
    require(back.text.empty() || (next & 0xc0) != 0x80);
  }
}

}  // namespace
}  // namespace galaxies::wire

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace galaxies::wire;
  if (size == 0) return 0;
  const std::span<const std::byte> rest(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  FuzzedDataProvider in(data + 1, size - 1);
  switch (data[0] % 6) {
    case 0:
      peer_hello(rest);
      break;
    case 1:
      peer_welcome(rest);
      break;
    case 2:
      peer_refuse(rest);
      break;
    case 3:
      built_hello(in);
      break;
    case 4:
      built_welcome(in);
      break;
    case 5:
      built_refuse(in);
      break;
  }
  return 0;
}
