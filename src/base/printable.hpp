// Untrusted text (a URL from the command line, bytes from the network) made safe to show in an
// error or a log line: at most `max_shown` characters, non-printable ones as '?', "..." when cut.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace galaxies::base {

inline std::string printable(std::string_view text, std::size_t max_shown = 80) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < max_shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  if (text.size() > max_shown) out += "...";
  return out;
}

}  // namespace galaxies::base
