// The web view's files as compiled into the library (monitor/web/web.cmake): what the page
// refers to is served, nothing else is, and the files keep to the rules the page is served under
// (Content-Security-Policy: default-src 'self'; text from other machines never parsed as HTML).
#include "monitor/web_assets.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace galaxies::monitor {
namespace {

std::string_view body_of(std::string_view path) {
  const web_asset* asset = find_web_asset(path);
  return asset ? asset->body : std::string_view();
}

// Every src="..." and href="..." of the page.
std::vector<std::string> references(std::string_view html) {
  static const std::regex attribute(R"re(\s(?:src|href)\s*=\s*"([^"]*)")re");
  std::vector<std::string> out;
  const std::string text(html);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), attribute);
       it != std::sregex_iterator(); ++it)
    out.push_back((*it)[1]);
  return out;
}

std::vector<std::string> served_paths() {
  std::vector<std::string> paths{"/", "/index.html"};
  for (const auto& ref : references(body_of("/"))) paths.push_back(ref);
  return paths;
}

TEST(web_assets, root_is_the_page_with_its_script) {
  const web_asset* root = find_web_asset("/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->path, "/");
  EXPECT_EQ(root->content_type, "text/html; charset=utf-8");
  EXPECT_NE(root->body.find(R"(<script src="/app.js")"), std::string_view::npos);
  EXPECT_NE(root->body.find(R"(<link rel="stylesheet" href="/style.css">)"),
            std::string_view::npos);
  EXPECT_EQ(body_of("/index.html"), root->body);
}

TEST(web_assets, every_reference_of_the_page_is_served_from_here) {
  const auto refs = references(body_of("/"));
  ASSERT_GE(refs.size(), 2u);
  for (const auto& ref : refs) {
    SCOPED_TRACE(ref);
    // CSP default-src 'self': another origin would be refused by the browser anyway.
    ASSERT_TRUE(ref.starts_with("/") && !ref.starts_with("//"));
    const web_asset* asset = find_web_asset(ref);
    ASSERT_NE(asset, nullptr);
    EXPECT_FALSE(asset->body.empty());
  }
}

TEST(web_assets, content_types_follow_the_extension) {
  ASSERT_NE(find_web_asset("/app.js"), nullptr);
  ASSERT_NE(find_web_asset("/style.css"), nullptr);
  EXPECT_EQ(find_web_asset("/app.js")->content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(find_web_asset("/style.css")->content_type, "text/css; charset=utf-8");
}

TEST(web_assets, unknown_paths_are_not_served) {
  for (const char* path : {"", "/nope", "/app.js/", "/APP.JS", "app.js", "/../app.js", "/app.js?x",
                           "/status.json", "/metrics", "/web.cmake", "//"}) {
    SCOPED_TRACE(path);
    EXPECT_EQ(find_web_asset(path), nullptr);
  }
}

TEST(web_assets, no_data_is_ever_parsed_as_html) {
  // Hostnames and addresses come from other machines: the page builds its DOM with textContent.
  for (const auto& path : served_paths()) {
    SCOPED_TRACE(path);
    const auto body = body_of(path);
    for (const char* sink : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                             "eval(", "new Function"})
      EXPECT_EQ(body.find(sink), std::string_view::npos) << sink;
  }
}

TEST(web_assets, the_page_has_no_inline_script_or_style) {
  // Under default-src 'self' the browser would refuse them: the page would silently break.
  const std::string html(body_of("/"));
  EXPECT_EQ(html.find("<style"), std::string::npos);
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(\sstyle\s*=)")));
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(\son[a-z]+\s*=)")));
  EXPECT_EQ(html.find("javascript:"), std::string::npos);
  static const std::regex script_tag(R"(<script\b[^>]*>)");
  int scripts = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), script_tag);
       it != std::sregex_iterator(); ++it, ++scripts)
    EXPECT_NE(it->str().find(" src="), std::string::npos) << it->str();
  EXPECT_GE(scripts, 1);
}

}  // namespace
}  // namespace galaxies::monitor
