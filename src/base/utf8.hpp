// Text from peers, registry rows and local clients is validated before anything keeps it: valid
// UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF) and, for names shown to people,
// no control characters (C0, DEL, C1), so that no log line or terminal can be steered by it.
#pragma once

#include <cstddef>
#include <string_view>

namespace galaxies::base {

constexpr bool is_valid_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    char32_t point = 0;
    char32_t smallest = 0;
    if ((c & 0xe0) == 0xc0) {
      length = 2, point = c & 0x1f, smallest = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      length = 3, point = c & 0x0f, smallest = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      length = 4, point = c & 0x07, smallest = 0x10000;
    } else {
      return false;  // a continuation byte where a sequence must start, or 0xf8..0xff
    }
    if (text.size() - i < length) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      point = (point << 6) | (next & 0x3f);
    }
    if (point < smallest || point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff)) return false;
    i += length;
  }
  return true;
}

// Valid UTF-8 of 1..max_bytes bytes, with no C0, DEL or C1 control character.
constexpr bool is_clean_name(std::string_view text, std::size_t max_bytes) noexcept {
  if (text.empty() || text.size() > max_bytes || !is_valid_utf8(text)) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return false;
    // C1 controls (U+0080..U+009F) are encoded as 0xc2 0x80..0x9f.
    if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xa0)
      return false;
  }
  return true;
}

}  // namespace galaxies::base
