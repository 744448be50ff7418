// The web view's files (monitor/web/), compiled into the library so that a master serves its page
// with nothing installed beside it. Generated at build time by monitor/web/web.cmake.
#pragma once

#include <string_view>

namespace galaxies::monitor {

struct web_asset {
  std::string_view path;          // as requested: "/", "/app.js", "/style.css"
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view body;
};

// The file served at `path`, or nullptr when no file is served there.
const web_asset* find_web_asset(std::string_view path) noexcept;

}  // namespace galaxies::monitor
