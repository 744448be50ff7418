// Bodiless and single-field control frames: heartbeat, goodbye, status (docs/protocol.md §2, §8).
#include "wire/control.hpp"

#include <algorithm>
#include <string_view>

#include "wire/byte_io.hpp"
#include "wire/codes.hpp"

namespace galaxies::wire {

void append_heartbeat(std::vector<std::byte>& out) {
  detail::begin_frame(out, frame_type::heartbeat, 0, 0, 0);
}

void append_heartbeat(std::vector<std::byte>& out, std::uint32_t lateness_ms) {
  auto writer = detail::begin_frame(out, frame_type::heartbeat, 0, 0, 4);
  writer.put(lateness_ms);
}

void append_probe(std::vector<std::byte>& out, std::uint64_t token) {
  auto writer = detail::begin_frame(out, frame_type::probe, 0, 0, 8);
  writer.put(token);
}

void append_probe_reply(std::vector<std::byte>& out, std::uint64_t token) {
  auto writer = detail::begin_frame(out, frame_type::probe_reply, 0, 0, 8);
  writer.put(token);
}

std::uint64_t decode_probe_token(const frame_view& frame) noexcept {
  const std::span<const std::byte> body = detail::body_of(frame);
  return body.size() == 8 ? base::load_le<std::uint64_t>(body.data()) : 0;
}

std::uint32_t decode_heartbeat(const frame_view& frame) noexcept {
  const std::span<const std::byte> body = detail::body_of(frame);
  return body.size() == 4 ? base::load_le<std::uint32_t>(body.data()) : 0;
}

void append_goodbye(std::vector<std::byte>& out, leave_reason reason) {
  auto writer = detail::begin_frame(out, frame_type::goodbye, 0, 0, 1);
  writer.put(static_cast<std::uint8_t>(reason));
}

void append_stopping(std::vector<std::byte>& out, std::uint32_t grace_ms) {
  auto writer = detail::begin_frame(out, frame_type::stopping, 0, 0, 4);
  writer.put(grace_ms);
}

std::uint32_t decode_stopping(const frame_view& frame) noexcept {
  const std::span<const std::byte> body = detail::body_of(frame);
  return body.size() == 4 ? base::load_le<std::uint32_t>(body.data()) : 0;
}

void append_auth_challenge(std::vector<std::byte>& out, const auth_value& nonce) {
  auto writer = detail::begin_frame(out, frame_type::auth_challenge, 0, 0, nonce.size());
  writer.put_bytes(nonce.data(), nonce.size());
}

void append_auth_proof(std::vector<std::byte>& out, const auth_value& proof) {
  auto writer = detail::begin_frame(out, frame_type::auth_proof, 0, 0, proof.size());
  writer.put_bytes(proof.data(), proof.size());
}

std::error_code decode_auth_value(const frame_view& frame, auth_value& out) {
  const std::span<const std::byte> body = detail::body_of(frame);
  const bool auth_frame = frame.header.type == frame_type::auth_challenge ||
                          frame.header.type == frame_type::auth_proof;
  if (!auth_frame || body.size() != out.size()) return decode_error::bad_body;
  std::copy(body.begin(), body.end(), out.begin());
  return {};
}

void append_status_request(std::vector<std::byte>& out) {
  detail::begin_frame(out, frame_type::status_request, 0, 0, 0);
}

void append_status_reply(std::vector<std::byte>& out, std::string_view json) {
  auto writer = detail::begin_frame(out, frame_type::status_reply, 0, 0, json.size());
  writer.put_bytes(json.data(), json.size());
}

void append_watch_request(std::vector<std::byte>& out) {
  detail::begin_frame(out, frame_type::watch_request, 0, 0, 0);
}

void append_watch_event(std::vector<std::byte>& out, std::string_view json) {
  auto writer = detail::begin_frame(out, frame_type::watch_event, 0, 0, json.size());
  writer.put_bytes(json.data(), json.size());
}

std::error_code decode_goodbye(const frame_view& frame, leave_reason& out) {
  const std::span<const std::byte> body = detail::body_of(frame);
  if (frame.header.type != frame_type::goodbye || body.size() != 1) return decode_error::bad_body;
  const auto value = static_cast<std::uint8_t>(body[0]);
  // The reason is shown to users and fed to switch statements: an unlisted one is malformed.
  if (!detail::is_leave_reason(value)) return decode_error::bad_body;
  out = static_cast<leave_reason>(value);
  return {};
}

std::string_view status_json(const frame_view& frame) {
  if (frame.header.type != frame_type::status_reply && frame.header.type != frame_type::watch_event)
    return {};
  const std::span<const std::byte> body = detail::body_of(frame);
  return {reinterpret_cast<const char*>(body.data()), body.size()};
}

}  // namespace galaxies::wire
