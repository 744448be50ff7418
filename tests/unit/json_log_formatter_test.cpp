// host/json_log_formatter: every record one valid JSON object on one line, whatever bytes the
// message holds; the fields, level names and UTC times as documented.
#include "host/json_log_formatter.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "galaxies/run.hpp"

namespace galaxies::host {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

// 2026-12-05T03:04:05Z, worked out by hand: 20 792 days from 1970-01-01 to 2026-12-05.
constexpr sys_seconds known_second{seconds{20792LL * 86400 + 3 * 3600 + 4 * 60 + 5}};

std::string format(json_log_formatter& f, std::string_view text,
                   spdlog::level::level_enum level = spdlog::level::info,
                   system_clock::time_point time = known_second + 123456us) {
  const spdlog::details::log_msg msg(time, spdlog::source_loc{}, "master", level,
                                     spdlog::string_view_t(text.data(), text.size()));
  spdlog::memory_buf_t out;
  f.format(msg, out);
  return fmt::to_string(out);
}

std::string format(std::string_view text) {
  json_log_formatter f("master", 1234);
  return format(f, text);
}

// The line must be one line and one object; returns the object.
nlohmann::json parse_line(const std::string& line) {
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
  EXPECT_TRUE(!line.empty() && line.back() == '\n') << line;
  const auto doc = nlohmann::json::parse(line, nullptr, false);
  EXPECT_TRUE(doc.is_object()) << line;
  return doc;
}

std::string message_of(const std::string& line) {
  const auto doc = parse_line(line);
  return doc.is_object() && doc.contains("msg") && doc["msg"].is_string()
             ? doc["msg"].get<std::string>()
             : "<no msg>";
}

TEST(JsonLogFormatter, ARecordHasExactlyTheDocumentedFields) {
  const auto line = format("host abc listening");
  EXPECT_EQ(line,
            R"({"time":"2026-12-05T03:04:05.123456Z","level":"info","role":"master","pid":1234,)"
            R"("msg":"host abc listening"})"
            "\n");
  const auto doc = parse_line(line);
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc.size(), 5u);
  EXPECT_EQ(doc["time"], "2026-12-05T03:04:05.123456Z");
  EXPECT_EQ(doc["level"], "info");
  EXPECT_EQ(doc["role"], "master");
  ASSERT_TRUE(doc["pid"].is_number_integer());
  EXPECT_EQ(doc["pid"].get<int>(), 1234);
  EXPECT_EQ(doc["msg"], "host abc listening");
}

TEST(JsonLogFormatter, NamesTheRoleAndThisProcessByDefault) {
  json_log_formatter f("worker");
  const auto doc = parse_line(format(f, "x"));
  EXPECT_EQ(doc["role"], "worker");
  EXPECT_EQ(doc["pid"].get<int>(), static_cast<int>(::getpid()));
}

TEST(JsonLogFormatter, LevelNamesAreTheOnesLogLevelTakes) {
  const std::pair<spdlog::level::level_enum, const char*> levels[] = {
      {spdlog::level::trace, "trace"}, {spdlog::level::debug, "debug"},
      {spdlog::level::info, "info"},   {spdlog::level::warn, "warn"},
      {spdlog::level::err, "error"},   {spdlog::level::critical, "critical"}};
  json_log_formatter f("master", 1);
  for (const auto& [level, name] : levels)
    EXPECT_EQ(parse_line(format(f, "m", level))["level"], name);
}

struct round_trip {
  std::string message;
  std::string expected;  // the msg field after parsing
  const char* what;
};

const std::string replacement = "\xef\xbf\xbd";

const std::vector<round_trip> round_trips = {
    {R"(say "hi")", R"(say "hi")", "quotes"},
    {R"(C:\dir\ and \u0041 and \)", R"(C:\dir\ and \u0041 and \)", "backslashes, a fake escape"},
    {"two\nlines\r\n", "two\nlines\r\n", "newline and carriage return"},
    {"a\tb\bc\fd", "a\tb\bc\fd", "tab, backspace, form feed"},
    {std::string("nul\0here", 8), std::string("nul\0here", 8), "NUL"},
    {"\x1b[31mred\x1b[0m", "\x1b[31mred\x1b[0m", "ESC (ANSI colours)"},
    {"del\x7f", "del\x7f", "DEL"},
    {std::string("\x01\x02\x1f", 3), std::string("\x01\x02\x1f", 3), "other C0 controls"},
    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
     "two-, three- and four-byte characters"},
    {"nel\xc2\x85 csi\xc2\x9b", "nel\xc2\x85 csi\xc2\x9b", "C1 controls NEL and CSI"},
    {"ls\xe2\x80\xa8ps\xe2\x80\xa9", "ls\xe2\x80\xa8ps\xe2\x80\xa9", "U+2028 and U+2029"},
    {"ab\xe2\x82", "ab" + replacement, "a three-byte character cut short"},
    {"\xf0\x9f\x98", replacement, "a four-byte character cut short"},
    {"\xc0\xaf", replacement + replacement, "overlong '/'"},
    {"\xe0\x80\xaf", replacement + replacement + replacement, "overlong three-byte '/'"},
    {"\xed\xa0\x80", replacement + replacement + replacement, "a surrogate"},
    {"x\xffy\x80z", "x" + replacement + "y" + replacement + "z", "bytes never valid"},
    {"\xc3\"", replacement + "\"", "a lead byte before a quote"},
    {"\xc3\\", replacement + "\\", "a lead byte before a backslash"},
    {"\xc3", replacement, "a lead byte at the very end"},
    {"", "", "empty"},
};

TEST(JsonLogFormatter, EveryMessageRoundTrips) {
  for (const auto& t : round_trips) EXPECT_EQ(message_of(format(t.message)), t.expected) << t.what;
}

TEST(JsonLogFormatter, ValidCharactersStayAsTheyAreAndLineBreakersAreEscaped) {
  EXPECT_NE(format("caf\xc3\xa9 \xf0\x9f\x98\x80").find("caf\xc3\xa9 \xf0\x9f\x98\x80"),
            std::string::npos);
  EXPECT_NE(format("a\nb").find(R"(a\nb)"), std::string::npos);
  EXPECT_NE(format("\x1b").find(R"(\u001b)"), std::string::npos);
  EXPECT_NE(format("\x7f").find(R"(\u007f)"), std::string::npos);
  EXPECT_NE(format(std::string(1, '\0')).find(R"(\u0000)"), std::string::npos);
  EXPECT_NE(format("\xc2\x85").find(R"(\u0085)"), std::string::npos);
  EXPECT_NE(format("\xe2\x80\xa8").find(R"(\u2028)"), std::string::npos);
}

TEST(JsonLogFormatter, AMessageCannotForgeARecord) {
  const std::string forged =
      "ok\"}\n{\"time\":\"2026-01-01T00:00:00.000000Z\",\"level\":\"critical\",\"role\":\"master\"";
  const auto line = format(forged);
  EXPECT_EQ(message_of(line), forged);
  EXPECT_EQ(parse_line(line)["level"], "info");
}

// No raw control byte and no invalid UTF-8 in a line: it shows as one line anywhere.
void expect_clean_line(const std::string& line, const std::string& message) {
  const auto body = std::string_view(line).substr(0, line.size() - 1);
  EXPECT_TRUE(std::none_of(body.begin(), body.end(), [](char c) {
    const auto b = static_cast<unsigned char>(c);
    return b < 0x20 || b == 0x7f;
  })) << testing::PrintToString(message);
  EXPECT_NO_THROW(nlohmann::json::parse(line).dump()) << testing::PrintToString(message);
}

TEST(JsonLogFormatter, EveryOneAndTwoByteMessageMakesOneValidLine) {
  for (int a = 0; a < 256; ++a) {
    const std::string one(1, static_cast<char>(a));
    expect_clean_line(format(one), one);
    for (int b = 0; b < 256; ++b) {
      const std::string two = {static_cast<char>(a), static_cast<char>(b)};
      const auto line = format(two);
      ASSERT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
      ASSERT_TRUE(nlohmann::json::parse(line, nullptr, false).is_object())
          << testing::PrintToString(two);
    }
  }
}

TEST(JsonLogFormatter, RandomBytesMakeOneValidLineAndValidTextRoundTrips) {
  std::mt19937 random(20261205);  // fixed: a failure reproduces
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 64);
  const std::string alphabet[] = {"a",
                                  "\"",
                                  "\\",
                                  "\n",
                                  std::string(1, '\0'),
                                  "\x7f",
                                  "\xc3\xa9",
                                  "\xe2\x82\xac",
                                  "\xf0\x9f\x98\x80",
                                  "\xc2\x85"};
  std::uniform_int_distribution<std::size_t> pick(0, std::size(alphabet) - 1);
  for (int i = 0; i < 5000; ++i) {
    std::string garbage;
    std::string text;
    for (int n = length(random); n > 0; --n) {
      garbage.push_back(static_cast<char>(byte(random)));
      text += alphabet[pick(random)];
    }
    expect_clean_line(format(garbage), garbage);
    EXPECT_EQ(message_of(format(text)), text);
  }
}

TEST(JsonLogFormatter, TimeIsUtcWithMicroseconds) {
  json_log_formatter f("master", 1);
  const auto time_of = [&](system_clock::time_point t) {
    return parse_line(format(f, "m", spdlog::level::info, t))["time"].get<std::string>();
  };
  EXPECT_EQ(time_of(known_second + 123456us), "2026-12-05T03:04:05.123456Z");
  EXPECT_EQ(time_of(known_second + 123456789ns), "2026-12-05T03:04:05.123456Z") << "truncated";
  EXPECT_EQ(time_of(known_second + 999999us), "2026-12-05T03:04:05.999999Z");
  EXPECT_EQ(time_of(known_second + 1s), "2026-12-05T03:04:06.000000Z") << "the next second";
  EXPECT_EQ(time_of(known_second), "2026-12-05T03:04:05.000000Z") << "and back";
  EXPECT_EQ(time_of(system_clock::time_point{}), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(time_of(system_clock::time_point{} - 1us), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(time_of(sys_days{2024y / 2 / 29} + 23h + 59min + 59s), "2024-02-29T23:59:59.000000Z");

  const auto now = system_clock::now();
  const auto shown = time_of(now);
  EXPECT_TRUE(std::regex_match(shown, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)")))
      << shown;
  // UTC, not local time: the C library's gmtime says the same.
  const std::time_t t = system_clock::to_time_t(floor<seconds>(now));
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  char expected[32];
  std::strftime(expected, sizeof expected, "%Y-%m-%dT%H:%M:%S", &utc);
  EXPECT_EQ(shown.substr(0, 19), expected);
}

TEST(JsonLogFormatter, WorksAsALoggersFormatter) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  spdlog::logger logger("json_test", sink);
  logger.set_formatter(std::make_unique<json_log_formatter>("worker", 77));
  logger.warn("peer {} said {}", "h\"1", "bye\n");
  const auto doc = parse_line(out.str());
  EXPECT_EQ(doc["level"], "warn");
  EXPECT_EQ(doc["pid"], 77);
  EXPECT_EQ(doc["msg"], "peer h\"1 said bye\n");
}

TEST(LogFormatOption, AnUnknownFormatIsAStartUpError) {
  options opts;
  opts.log_format = "yaml";
  // Were the format not checked first, the master would stop at this URL, not run on.
  opts.workers = 0;
  opts.registry = "unknown://scheme";
  char arg0[] = "json_log_formatter_test";
  char* argv[] = {arg0, nullptr};
  try {
    run(1, argv, opts, [](node&) {});
    ADD_FAILURE() << "run() accepted log_format 'yaml'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'yaml'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace galaxies::host
