#include <sys/random.h>

#include <cerrno>
#include <stdexcept>

#include "galaxies/ids.hpp"

namespace galaxies {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr bool is_dash_position(std::size_t i) {
  return i == 8 || i == 13 || i == 18 || i == 23;
}

void fill_random(void* data, std::size_t size) {
  auto* at = static_cast<std::uint8_t*>(data);
  std::size_t filled = 0;
  while (filled < size) {
    ssize_t n = ::getrandom(at + filled, size - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("getrandom failed");
    }
    filled += static_cast<std::size_t>(n);
  }
}

}  // namespace

std::array<std::uint64_t, 2> detail::uuid_hash_seed() noexcept {
  std::array<std::uint64_t, 2> seed{};
  try {
    fill_random(seed.data(), sizeof seed);
  } catch (const std::exception&) {
    // getrandom cannot fail once the kernel's pool is ready (it always is after boot); should it,
    // fixed odd constants still spread random UUIDs evenly.
    seed = {0xa0761d6478bd642full, 0xe7037ed1a0b428dbull};
  }
  return seed;
}

uuid uuid::random() {
  std::array<std::uint8_t, size> bytes;
  fill_random(bytes.data(), bytes.size());
  bytes[6] = static_cast<std::uint8_t>((bytes[6] & 0x0f) | 0x40);  // version 4
  bytes[8] = static_cast<std::uint8_t>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return uuid(bytes);
}

std::optional<uuid> uuid::parse(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  std::array<std::uint8_t, size> bytes{};
  std::size_t out = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (is_dash_position(i)) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = hex_value(text[i]);
    int lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    bytes[out++] = static_cast<std::uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return uuid(bytes);
}

std::string uuid::to_string() const {
  static constexpr char digits[] = "0123456789abcdef";
  std::string text;
  text.reserve(36);
  for (std::size_t i = 0; i < size; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text.push_back('-');
    text.push_back(digits[bytes_[i] >> 4]);
    text.push_back(digits[bytes_[i] & 0x0f]);
  }
  return text;
}

}  // namespace galaxies

namespace galaxies {

std::string slot::to_string() const {
  return host.to_string() + "#" + std::to_string(index);
}

}  // namespace galaxies
