// What the process logs at `level` and above while one of these lives, kept as text: spdlog's
// default logger is replaced, and put back when it goes.
#pragma once

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <sstream>
#include <string>

namespace galaxies::test {

class captured_log {
 public:
  explicit captured_log(spdlog::level::level_enum level = spdlog::level::warn)
      : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)),
        previous_(spdlog::default_logger()) {
    sink_->set_level(level);
    auto logger = std::make_shared<spdlog::logger>("captured", sink_);
    logger->set_level(level);
    spdlog::set_default_logger(std::move(logger));
  }
  ~captured_log() { spdlog::set_default_logger(previous_); }
  captured_log(const captured_log&) = delete;
  captured_log& operator=(const captured_log&) = delete;

  std::string text() const { return stream_.str(); }
  std::size_t lines() const {
    const std::string text = stream_.str();
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace galaxies::test
