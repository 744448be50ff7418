// Text that came from outside (the network, a shared file, a store, the command line): checking
// it, and showing it without letting it drive a terminal or forge a log line.
// Threading: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace galaxies::base {

inline constexpr char32_t replacement_character = 0xfffd;

struct utf8_char {
  char32_t code_point;  // replacement_character when not valid
  std::size_t length;   // bytes consumed, at least 1
  bool valid;
};

// The character that non-empty `text` starts with. Invalid UTF-8 yields one U+FFFD per "maximal
// subpart" (Unicode chapter 3, "U+FFFD Substitution of Maximal Subparts"; what browsers and
// Python do): a truncated sequence is one character, a stray or impossible byte is one each.
utf8_char decode_utf8(std::string_view text) noexcept;

// is_valid_utf8 from byte `at` on, where the text before it is ASCII.
bool is_valid_utf8_from(std::string_view text, std::size_t at) noexcept;

// True when `text` is well-formed UTF-8 (RFC 3629, Unicode table 3-7): no overlong form, no
// surrogate (U+D800..U+DFFF), nothing above U+10FFFF, no stray or missing continuation byte.
// An ASCII NUL is well-formed; reject it with is_plain_text() where it matters.
// Every message's command is checked at each hop, and commands are mostly short ASCII names: the
// common case stays inline, eight bytes at a time.
inline bool is_valid_utf8(std::string_view text) noexcept {
  constexpr std::uint64_t high_bits = 0x8080808080808080;
  std::size_t at = 0;
  for (; text.size() - at >= sizeof(std::uint64_t); at += sizeof(std::uint64_t)) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + at, sizeof word);
    if (word & high_bits) return is_valid_utf8_from(text, at);
  }
  for (; at < text.size(); ++at)
    if (static_cast<unsigned char>(text[at]) >= 0x80) return is_valid_utf8_from(text, at);
  return true;
}

// True for a code point that must never reach a terminal or a log line raw: C0 controls (ESC
// starts ANSI sequences), DEL, C1 controls (U+0080..U+009F; U+009B is a one-byte CSI), the line
// and paragraph separators, and the bidirectional marks, embeddings, overrides and isolates that
// make text display in another order than it reads.
bool is_unsafe_to_show(char32_t code_point) noexcept;

// Valid UTF-8 without any character is_unsafe_to_show(): text that shows as itself, on one line.
bool is_plain_text(std::string_view text) noexcept;

// A name from outside (a cluster, a host name, an address): plain text of 1..max_bytes bytes.
bool is_clean_name(std::string_view text, std::size_t max_bytes) noexcept;

// `text` made safe to show in an error message or a log line. Valid UTF-8 stays readable
// (including non-ASCII); every byte of an unsafe character, every byte of invalid UTF-8 and the
// backslash itself are written as \xNN, so the output is plain text and unambiguous. At most
// `max_bytes` bytes of the input are shown, never cutting a character, then "..." if any are left:
// the output holds at most 4 * max_bytes + 3 bytes, however hostile the input.
std::string printable(std::string_view text, std::size_t max_bytes = 80);

}  // namespace galaxies::base
