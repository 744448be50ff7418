#include "host/json_log_formatter.hpp"

#include <unistd.h>

#include <cstdint>

#include "base/text.hpp"

namespace galaxies::host {
namespace {

using spdlog::memory_buf_t;

void append(memory_buf_t& dest, std::string_view text) {
  dest.append(text.data(), text.data() + text.size());
}

// `value` in exactly `width` decimal digits (it must fit).
void append_digits(memory_buf_t& dest, std::uint32_t value, int width) {
  char digits[10];
  for (int i = width - 1; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  dest.append(digits, digits + width);
}

// `\uXXXX`: every character escaped here is in the Basic Multilingual Plane.
void append_unicode_escape(memory_buf_t& dest, char32_t code_point) {
  static constexpr char hex[] = "0123456789abcdef";
  char escaped[] = "\\u0000";
  for (int i = 5; i >= 2; --i, code_point >>= 4) escaped[i] = hex[code_point & 0xf];
  dest.append(escaped, escaped + 6);
}

void append_ascii_escape(memory_buf_t& dest, unsigned char byte) {
  switch (byte) {
    case '"':
      return append(dest, "\\\"");
    case '\\':
      return append(dest, "\\\\");
    case '\b':
      return append(dest, "\\b");
    case '\f':
      return append(dest, "\\f");
    case '\n':
      return append(dest, "\\n");
    case '\r':
      return append(dest, "\\r");
    case '\t':
      return append(dest, "\\t");
    default:
      return append_unicode_escape(dest, byte);
  }
}

bool is_plain_ascii(unsigned char byte) {
  return byte >= 0x20 && byte < 0x7f && byte != '"' && byte != '\\';
}

// Valid JSON raw, but C1 controls drive terminals (U+009B is a CSI) and NEL, LS and PS end a
// line for some readers: a record must stay one line wherever it is shown.
bool must_escape(char32_t code_point) {
  return (code_point >= 0x80 && code_point <= 0x9f) || code_point == 0x2028 || code_point == 0x2029;
}

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    // The names --log-level takes (spdlog's own says "warning").
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

// A system_clock time point in nanoseconds spans the years 1678 to 2262: always four digits.
std::string utc_to_the_second(std::chrono::sys_seconds second) {
  using namespace std::chrono;
  const auto day = floor<days>(second);
  const year_month_day date(day);
  const hh_mm_ss time(second - day);
  memory_buf_t out;
  append_digits(out, static_cast<std::uint32_t>(static_cast<int>(date.year())), 4);
  out.push_back('-');
  append_digits(out, static_cast<unsigned>(date.month()), 2);
  out.push_back('-');
  append_digits(out, static_cast<unsigned>(date.day()), 2);
  out.push_back('T');
  append_digits(out, static_cast<std::uint32_t>(time.hours().count()), 2);
  out.push_back(':');
  append_digits(out, static_cast<std::uint32_t>(time.minutes().count()), 2);
  out.push_back(':');
  append_digits(out, static_cast<std::uint32_t>(time.seconds().count()), 2);
  return fmt::to_string(out);
}

}  // namespace

void append_json_escaped(memory_buf_t& dest, std::string_view text) {
  std::size_t copied = 0;  // text before this is in dest
  std::size_t at = 0;
  const auto flush = [&] { dest.append(text.data() + copied, text.data() + at); };
  while (at < text.size()) {
    const auto byte = static_cast<unsigned char>(text[at]);
    if (is_plain_ascii(byte)) {
      ++at;
      continue;
    }
    if (byte < 0x80) {
      flush();
      append_ascii_escape(dest, byte);
      copied = ++at;
      continue;
    }
    const auto c = base::decode_utf8(text.substr(at));
    if (c.valid && !must_escape(c.code_point)) {
      at += c.length;
      continue;
    }
    flush();
    if (c.valid)
      append_unicode_escape(dest, c.code_point);
    else
      append(dest, "\xef\xbf\xbd");  // U+FFFD, the replacement character
    copied = at += c.length;
  }
  flush();
}

json_log_formatter::json_log_formatter(std::string_view role)
    : json_log_formatter(role, static_cast<int>(::getpid())) {}

json_log_formatter::json_log_formatter(std::string_view role, int pid) {
  memory_buf_t fields;
  append(fields, R"(","role":")");
  append_json_escaped(fields, role);
  append(fields, R"(","pid":)");
  append(fields, std::to_string(pid));
  append(fields, R"(,"msg":")");
  fields_ = fmt::to_string(fields);
}

void json_log_formatter::format(const spdlog::details::log_msg& msg, memory_buf_t& dest) {
  using namespace std::chrono;
  const auto second = floor<seconds>(msg.time);
  if (second.time_since_epoch() != cached_second_ || cached_time_.empty()) {
    cached_time_ = utc_to_the_second(second);
    cached_second_ = second.time_since_epoch();
  }
  const auto micros = duration_cast<microseconds>(msg.time - second).count();
  append(dest, R"({"time":")");
  append(dest, cached_time_);
  dest.push_back('.');
  append_digits(dest, static_cast<std::uint32_t>(micros), 6);
  append(dest, R"(Z","level":")");
  append(dest, level_name(msg.level));
  append(dest, fields_);
  append_json_escaped(dest, std::string_view(msg.payload.data(), msg.payload.size()));
  append(dest, "\"}\n");
}

std::unique_ptr<spdlog::formatter> json_log_formatter::clone() const {
  return std::make_unique<json_log_formatter>(*this);
}

}  // namespace galaxies::host
