// Cursors over frame bytes, internal to the wire layer.
// The writer trusts the size its caller computed up front, so an encoder grows its output once per
// frame; the reader checks every step, so malformed input can never read past the frame.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "base/endian.hpp"
#include "galaxies/ids.hpp"
#include "wire/frame.hpp"

namespace galaxies::wire::detail {

class byte_writer {
 public:
  explicit byte_writer(std::byte* at) noexcept : at_(at) {}

  template <class T>
  void put(T value) noexcept {
    base::store_le(at_, value);
    at_ += sizeof value;
  }

  void put_bytes(const void* data, std::size_t size) noexcept {
    // memcpy's pointers must be valid even for zero bytes; an empty span's data() may be null.
    if (size != 0) std::memcpy(at_, data, size);
    at_ += size;
  }

  void put_uuid(const uuid& id) noexcept { put_bytes(id.bytes().data(), uuid::size); }

  template <class Tag>
  void put_id(const basic_id<Tag>& id) noexcept {
    put_uuid(id.value());
  }

  void put_zeros(std::size_t size) noexcept {
    std::memset(at_, 0, size);
    at_ += size;
  }

  std::byte* position() const noexcept { return at_; }

 private:
  std::byte* at_;
};

// Grows `out` once by the whole frame, writes the header, and returns a writer at the body.
// The caller guarantees body_size + 4 fits the u32 size field and then writes exactly body_size
// bytes.
inline byte_writer begin_frame(std::vector<std::byte>& out, frame_type type, std::uint8_t flags,
                               std::uint16_t aux, std::size_t body_size) {
  const std::size_t start = out.size();
  out.resize(start + header_size + body_size);
  byte_writer writer(out.data() + start);
  writer.put(static_cast<std::uint32_t>(body_size + min_size_field));
  writer.put(static_cast<std::uint8_t>(type));
  writer.put(flags);
  writer.put(aux);
  return writer;
}

class byte_reader {
 public:
  explicit byte_reader(std::span<const std::byte> bytes) noexcept : bytes_(bytes) {}

  std::size_t remaining() const noexcept { return bytes_.size(); }
  bool empty() const noexcept { return bytes_.empty(); }

  template <class T>
  bool get(T& value) noexcept {
    if (bytes_.size() < sizeof value) return false;
    value = base::load_le<T>(bytes_.data());
    bytes_ = bytes_.subspan(sizeof value);
    return true;
  }

  bool get_uuid(uuid& id) noexcept {
    if (bytes_.size() < uuid::size) return false;
    std::array<std::uint8_t, uuid::size> raw;
    std::memcpy(raw.data(), bytes_.data(), uuid::size);
    id = uuid(raw);
    bytes_ = bytes_.subspan(uuid::size);
    return true;
  }

  template <class Tag>
  bool get_id(basic_id<Tag>& id) noexcept {
    uuid value;
    if (!get_uuid(value)) return false;
    id = basic_id<Tag>(value);
    return true;
  }

  bool get_bytes(std::size_t size, std::span<const std::byte>& out) noexcept {
    if (bytes_.size() < size) return false;
    out = bytes_.first(size);
    bytes_ = bytes_.subspan(size);
    return true;
  }

  bool get_string(std::size_t size, std::string_view& out) noexcept {
    std::span<const std::byte> raw;
    if (!get_bytes(size, raw)) return false;
    out = std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size());
    return true;
  }

  bool skip(std::size_t size) noexcept {
    if (bytes_.size() < size) return false;
    bytes_ = bytes_.subspan(size);
    return true;
  }

 private:
  std::span<const std::byte> bytes_;
};

// The body of a frame, or nothing when the view is too short to hold a header. Decoders bound every
// read by the bytes actually present, never by the size field, so a hand-built view cannot mislead
// them.
inline std::span<const std::byte> body_of(const frame_view& frame) noexcept {
  if (frame.bytes.size() < header_size) return {};
  return frame.bytes.subspan(header_size);
}

}  // namespace galaxies::wire::detail
