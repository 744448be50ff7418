// Identities of nodes and hosts. Value types; safe to use from any thread.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace galaxies {

// A random (version 4) 128-bit UUID. The all-zero value means "none".
class uuid {
 public:
  static constexpr std::size_t size = 16;

  constexpr uuid() = default;
  explicit constexpr uuid(const std::array<std::uint8_t, size>& bytes) : bytes_(bytes) {}

  static uuid random();
  // Accepts the canonical 8-4-4-4-12 hex form; nullopt for anything else.
  static std::optional<uuid> parse(std::string_view text);

  std::string to_string() const;
  const std::array<std::uint8_t, size>& bytes() const { return bytes_; }
  bool is_nil() const { return *this == uuid{}; }

  friend constexpr auto operator<=>(const uuid&, const uuid&) = default;
  // Two 8-byte compares, inline: the defaulted one calls memcmp, and ids are compared in every
  // table lookup on the routing path (5 % of a master's instructions with 64 requests in flight).
  friend constexpr bool operator==(const uuid& a, const uuid& b) noexcept {
    if (std::is_constant_evaluated()) return a.bytes_ == b.bytes_;
    std::uint64_t x[2];
    std::uint64_t y[2];
    std::memcpy(x, a.bytes_.data(), size);
    std::memcpy(y, b.bytes_.data(), size);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
  }

 private:
  std::array<std::uint8_t, size> bytes_{};
};

// Strong types, so that a host id is never passed where a node id is expected.
template <class Tag>
class basic_id {
 public:
  constexpr basic_id() = default;
  explicit constexpr basic_id(const uuid& value) : value_(value) {}

  static basic_id random() { return basic_id(uuid::random()); }
  static std::optional<basic_id> parse(std::string_view text) {
    auto value = uuid::parse(text);
    if (!value) return std::nullopt;
    return basic_id(*value);
  }

  const uuid& value() const { return value_; }
  std::string to_string() const { return value_.to_string(); }
  bool is_nil() const { return value_.is_nil(); }

  friend constexpr auto operator<=>(const basic_id&, const basic_id&) = default;

 private:
  uuid value_;
};

struct node_tag;
struct host_tag;
using node_id = basic_id<node_tag>;  // one worker process (a respawn is a new node)
using host_id = basic_id<host_tag>;  // one master process

// A worker slot: one of the `options::workers` places a host's master keeps a worker in. The
// worker in slot 3 of host B is a new node (a new node_id) after every respawn, in the same slot
// (docs/protocol.md §5). Attached nodes fill no slot (std::optional<slot> is empty for them).
struct slot {
  host_id host;
  std::uint32_t index = 0;  // 0 .. workers - 1

  std::string to_string() const;  // "<host uuid>#<index>"
  friend constexpr auto operator<=>(const slot&, const slot&) = default;
};

}  // namespace galaxies

namespace galaxies::detail {
// Chosen at random once per process: node ids come from peers, and a peer that could predict
// where its ids land in our tables could pile them all into one bucket.
std::array<std::uint64_t, 2> uuid_hash_seed() noexcept;
}  // namespace galaxies::detail

template <>
struct std::hash<galaxies::uuid> {
  // Both halves, keyed, folded with one 64x64->128 multiply (as wyhash does): a few instructions
  // on the routing path, where a byte loop cost more than the table lookup itself.
  std::size_t operator()(const galaxies::uuid& id) const noexcept {
    static const auto seed = galaxies::detail::uuid_hash_seed();
    std::uint64_t lo = 0;
    std::uint64_t hi = 0;
    std::memcpy(&lo, id.bytes().data(), 8);
    std::memcpy(&hi, id.bytes().data() + 8, 8);
    __extension__ using wide = unsigned __int128;
    const wide product = static_cast<wide>(lo ^ seed[0]) * static_cast<wide>(hi ^ seed[1]);
    return static_cast<std::size_t>(static_cast<std::uint64_t>(product) ^
                                    static_cast<std::uint64_t>(product >> 64));
  }
};

template <class Tag>
struct std::hash<galaxies::basic_id<Tag>> {
  std::size_t operator()(const galaxies::basic_id<Tag>& id) const noexcept {
    return std::hash<galaxies::uuid>{}(id.value());
  }
};

template <>
struct std::hash<galaxies::slot> {
  // The host's keyed hash, the index folded in with an odd multiplier (as boost's hash_combine).
  std::size_t operator()(const galaxies::slot& s) const noexcept {
    const std::size_t h = std::hash<galaxies::host_id>{}(s.host);
    return h ^ (static_cast<std::size_t>(s.index) * 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
  }
};
