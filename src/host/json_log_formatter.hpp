// `--log-format json`: each log record as one JSON object on one line, for log shippers.
//   {"time":"2026-12-05T03:04:05.123456Z","level":"info","role":"master","pid":1234,"msg":"..."}
// Messages carry text from outside (peer host names, registry rows): the escaping makes every
// line valid JSON whatever the bytes, so no message can end its line or forge another record.
// Threading: as any spdlog formatter, called under its sink's lock; clone() for another sink.
#pragma once

#include <spdlog/formatter.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace galaxies::host {

class json_log_formatter final : public spdlog::formatter {
 public:
  // role: "master" or "worker". pid: the one each record names (this process's by default).
  explicit json_log_formatter(std::string_view role);
  json_log_formatter(std::string_view role, int pid);

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  std::string fields_;  // `","role":...,"pid":N,"msg":"`: the same in every record
  // The record's time down to the second, formatted once per second as spdlog's own pattern
  // formatter does: most records share their second with the one before.
  std::chrono::seconds cached_second_{};  // meaningless while cached_time_ is empty
  std::string cached_time_;
};

// Appends `text` as the inside of a JSON string: `"` and `\`, every C0 control and DEL, the C1
// controls and U+2028/U+2029 (line breaks to some readers) escaped; invalid UTF-8 as U+FFFD.
void append_json_escaped(spdlog::memory_buf_t& dest, std::string_view text);

}  // namespace galaxies::host
