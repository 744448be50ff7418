#include "base/text.hpp"

namespace galaxies::base {
namespace {

struct decoded {
  char32_t code_point = 0;
  std::size_t length = 0;  // 0: no valid character starts here
  std::size_t prefix = 1;  // when length is 0: the bytes that could start one (at least 1)
};

bool in(unsigned char byte, unsigned char low, unsigned char high) {
  return byte >= low && byte <= high;
}

// One character at the start of `text`. The bounds of the second byte carry every rule: they
// exclude overlong forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
decoded decode_one(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return {lead, 1};
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xbf;
  char32_t value = 0;
  if (in(lead, 0xc2, 0xdf)) {
    length = 2;
    value = lead & 0x1f;
  } else if (in(lead, 0xe0, 0xef)) {
    length = 3;
    value = lead & 0x0f;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (in(lead, 0xf0, 0xf4)) {
    length = 4;
    value = lead & 0x07;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return {};  // a continuation byte, C0, C1 (always overlong) or F5..FF (beyond U+10FFFF)
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (i >= text.size() || !in(byte(i), low, high)) return {0, 0, i};
    value = value << 6 | (byte(i) & 0x3f);
    low = 0x80;
    high = 0xbf;
  }
  return {value, length};
}

void append_escaped(std::string& out, std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += "\\x";
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
}

}  // namespace

utf8_char decode_utf8(std::string_view text) noexcept {
  const auto d = decode_one(text);
  if (d.length == 0) return {replacement_character, d.prefix, false};
  return {d.code_point, d.length, true};
}

bool is_valid_utf8_from(std::string_view text, std::size_t at) noexcept {
  while (at < text.size()) {
    const auto d = decode_one(text.substr(at));
    if (d.length == 0) return false;
    at += d.length;
  }
  return true;
}

bool is_unsafe_to_show(char32_t c) noexcept {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) ||  // C0, DEL, C1
         c == 0x061c ||                           // Arabic letter mark
         c == 0x200e || c == 0x200f ||            // left-to-right and right-to-left marks
         c == 0x2028 || c == 0x2029 ||            // line and paragraph separators
         (c >= 0x202a && c <= 0x202e) ||          // embeddings and overrides
         (c >= 0x2066 && c <= 0x2069);            // isolates
}

bool is_plain_text(std::string_view text) noexcept {
  while (!text.empty()) {
    const auto d = decode_one(text);
    if (d.length == 0 || is_unsafe_to_show(d.code_point)) return false;
    text.remove_prefix(d.length);
  }
  return true;
}

bool is_clean_name(std::string_view text, std::size_t max_bytes) noexcept {
  return !text.empty() && text.size() <= max_bytes && is_plain_text(text);
}

std::string printable(std::string_view text, std::size_t max_bytes) {
  std::string out;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto d = decode_one(text.substr(at));
    const std::size_t length = d.length == 0 ? 1 : d.length;
    if (at + length > max_bytes) break;
    const auto bytes = text.substr(at, length);
    if (d.length == 0 || d.code_point == '\\' || is_unsafe_to_show(d.code_point)) {
      append_escaped(out, bytes);
    } else {
      out += bytes;
    }
    at += length;
  }
  if (at < text.size()) out += "...";
  return out;
}

}  // namespace galaxies::base
