#include "host/log_setup.hpp"

#include <spdlog/sinks/ansicolor_sink.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "host/async_fd_sink.hpp"
#include "host/json_log_formatter.hpp"

namespace galaxies {

std::string_view to_string(log_severity severity) noexcept {
  switch (severity) {
    case log_severity::trace:
      return "trace";
    case log_severity::debug:
      return "debug";
    case log_severity::info:
      return "info";
    case log_severity::warn:
      return "warn";
    case log_severity::error:
      return "error";
    case log_severity::critical:
      return "critical";
  }
  return "unknown";
}

namespace host {
namespace {

// Hands each record to options::log_sink; base_sink's mutex makes the calls one at a time.
class callback_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  callback_sink(std::function<void(const log_record&)> fn, std::string role)
      : fn_(std::move(fn)), role_(std::move(role)), pid_(static_cast<int>(::getpid())) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    log_record r;
    r.time = msg.time;
    // Below off, spdlog's levels are ours in the same order.
    r.level = static_cast<log_severity>(std::min<int>(msg.level, SPDLOG_LEVEL_CRITICAL));
    r.role = role_;
    r.pid = pid_;
    r.text = std::string_view(msg.payload.data(), msg.payload.size());
    fn_(r);
  }
  void flush_() override {}

 private:
  std::function<void(const log_record&)> fn_;
  std::string role_;
  int pid_;
};

// The loggers galaxies installed itself (an earlier run() in this process): replaced freely.
std::weak_ptr<spdlog::logger>& our_logger() {
  static std::weak_ptr<spdlog::logger> logger;
  return logger;
}

// Its stderr sink, when it has one (status counts what it dropped).
std::weak_ptr<async_fd_sink>& our_stderr_sink() {
  static std::weak_ptr<async_fd_sink> sink;
  return sink;
}

// spdlog starts with an unnamed default logger writing to stdout in colour. Any other default
// logger, or that one with other sinks, is the application's doing.
bool application_logger_installed() {
  const auto logger = spdlog::default_logger();
  if (!logger || logger == our_logger().lock()) return false;
  if (!logger->name().empty()) return true;
  const auto& sinks = logger->sinks();
  return sinks.size() != 1 ||
         dynamic_cast<spdlog::sinks::ansicolor_stdout_sink_mt*>(sinks[0].get()) == nullptr;
}

spdlog::level::level_enum parse_level(const std::string& name) {
  // from_str reads an unknown name as "off": a typo would silence every record.
  const auto level = spdlog::level::from_str(name);
  if (level == spdlog::level::off && name != "off")
    throw std::invalid_argument("options::log_level is '" + name +
                                "'; it must be trace, debug, info, warn, error, critical or off");
  return level;
}

}  // namespace

bool logs_json(const options& opts) {
  if (opts.log_format == "json") return true;
  if (opts.log_format == "text") return false;
  throw std::invalid_argument("options::log_format is '" + opts.log_format +
                              "'; it must be 'text' or 'json'");
}

logging_session::logging_session(std::shared_ptr<async_fd_sink> sink) noexcept
    : sink_(std::move(sink)) {}

logging_session::~logging_session() {
  if (sink_) sink_->stop();
}

logging_session configure_logging(const options& opts, const char* role) {
  const bool json = logs_json(opts);
  const auto level = parse_level(opts.log_level);
  if (application_logger_installed()) return {};  // theirs, as they set it up
  std::shared_ptr<spdlog::logger> logger;
  std::shared_ptr<async_fd_sink> stderr_sink;
  if (opts.log_sink) {
    logger = std::make_shared<spdlog::logger>(role,
                                              std::make_shared<callback_sink>(opts.log_sink, role));
  } else {
    stderr_sink = std::make_shared<async_fd_sink>(STDERR_FILENO, async_fd_sink::settings{});
    logger = std::make_shared<spdlog::logger>(role, stderr_sink);
    if (json)
      logger->set_formatter(std::make_unique<json_log_formatter>(role));
    else
      logger->set_pattern(std::string("[%H:%M:%S.%e] [") + role + " %P] [%l] %v");
    // A critical record is often a process's last: it waits until it is written.
    logger->flush_on(spdlog::level::critical);
  }
  logger->set_level(level);
  spdlog::set_default_logger(logger);
  our_logger() = logger;
  our_stderr_sink() = stderr_sink;
  if (!stderr_sink || !stderr_sink->start()) return {};
  return logging_session(std::move(stderr_sink));
}

std::uint64_t log_lines_dropped() noexcept {
  const auto sink = our_stderr_sink().lock();
  return sink ? sink->lines_dropped() : 0;
}

}  // namespace host
}  // namespace galaxies
