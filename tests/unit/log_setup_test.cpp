// Who a galaxies process logs through: the application's own spdlog default logger survives
// run()'s set-up untouched; options::log_sink gets every record as plain data; otherwise
// galaxies writes to stderr itself (as text or JSON) in place of spdlog's untouched default.
#include "host/log_setup.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ansicolor_sink.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "host/async_fd_sink.hpp"
#include "host/json_log_formatter.hpp"
#include "process/proc_tasks.hpp"

namespace galaxies::host {
namespace {

class LogSetup : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = spdlog::default_logger(); }
  void TearDown() override { spdlog::set_default_logger(saved_); }

  // What spdlog starts a process with: unnamed, colour on stdout.
  static void install_spdlogs_own_default() {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "", std::make_shared<spdlog::sinks::ansicolor_stdout_sink_mt>()));
  }

  std::shared_ptr<spdlog::logger> saved_;
};

TEST_F(LogSetup, TheApplicationsOwnDefaultLoggerIsKeptAsItIs) {
  std::ostringstream out;
  auto app = std::make_shared<spdlog::logger>(
      "app", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  app->set_pattern("app|%l|%v");
  app->set_level(spdlog::level::debug);
  spdlog::set_default_logger(app);

  options opts;
  opts.log_level = "error";  // theirs wins: not applied
  opts.log_format = "json";
  const auto session = configure_logging(opts, "master");

  EXPECT_EQ(spdlog::default_logger(), app);
  EXPECT_EQ(app->level(), spdlog::level::debug);
  spdlog::debug("from galaxies");
  EXPECT_EQ(out.str(), "app|debug|from galaxies\n");
}

TEST_F(LogSetup, NewSinksOnSpdlogsDefaultLoggerCountAsTheApplicationsSetUp) {
  std::ostringstream out;
  install_spdlogs_own_default();
  const auto logger = spdlog::default_logger();
  logger->sinks() = {std::make_shared<spdlog::sinks::ostream_sink_mt>(out)};
  logger->set_pattern("%v");
  const auto session = configure_logging(options{}, "worker");
  EXPECT_EQ(spdlog::default_logger(), logger);
  spdlog::info("kept");
  EXPECT_EQ(out.str(), "kept\n");
}

TEST_F(LogSetup, ALogSinkGetsEveryRecordAtOrAboveTheLevelAsPlainData) {
  install_spdlogs_own_default();
  std::vector<log_record> seen;
  std::vector<std::string> texts;  // the record's views live only during the call
  options opts;
  opts.log_level = "info";
  opts.log_sink = [&](const log_record& r) {
    seen.push_back(r);
    texts.emplace_back(r.text);
    EXPECT_EQ(r.role, "worker");
  };
  const auto before = std::chrono::system_clock::now();
  const auto session = configure_logging(opts, "worker");
  spdlog::debug("below the level");
  spdlog::info("node {} joined", 7);
  spdlog::warn("careful");
  spdlog::error("bad");
  spdlog::critical("worse");
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(texts, (std::vector<std::string>{"node 7 joined", "careful", "bad", "worse"}));
  EXPECT_EQ(seen[0].level, log_severity::info);
  EXPECT_EQ(seen[1].level, log_severity::warn);
  EXPECT_EQ(seen[2].level, log_severity::error);
  EXPECT_EQ(seen[3].level, log_severity::critical);
  EXPECT_EQ(seen[0].pid, static_cast<int>(::getpid()));
  EXPECT_GE(seen[0].time, before);
  EXPECT_LE(seen[3].time, std::chrono::system_clock::now());
  EXPECT_EQ(to_string(seen[1].level), "warn");
}

TEST_F(LogSetup, ALogSinkTakesTraceToo) {
  install_spdlogs_own_default();
  std::vector<log_severity> levels;
  options opts;
  opts.log_level = "trace";
  opts.log_sink = [&](const log_record& r) { levels.push_back(r.level); };
  const auto session = configure_logging(opts, "master");
  spdlog::trace("t");
  spdlog::debug("d");
  EXPECT_EQ(levels, (std::vector<log_severity>{log_severity::trace, log_severity::debug}));
}

TEST_F(LogSetup, WithoutEitherGalaxiesReplacesSpdlogsDefaultWithItsOwn) {
  install_spdlogs_own_default();
  options opts;
  opts.log_format = "json";
  opts.log_level = "warn";
  const std::size_t threads_before = process::threads_of(::getpid()).size();
  {
    const auto session = configure_logging(opts, "master");
    const auto ours = spdlog::default_logger();
    EXPECT_EQ(ours->name(), "master");
    EXPECT_EQ(ours->level(), spdlog::level::warn);
    ASSERT_EQ(ours->sinks().size(), 1u);
    EXPECT_NE(dynamic_cast<async_fd_sink*>(ours->sinks()[0].get()), nullptr);
    // Its writer thread starts with the first line (async_fd_sink.hpp) ...
    EXPECT_EQ(process::threads_of(::getpid()).size(), threads_before);
    spdlog::warn("log_setup_test: a line to stderr");
    EXPECT_EQ(process::threads_of(::getpid()).size(), threads_before + 1);
    EXPECT_EQ(log_lines_dropped(), 0u);
    // A second set-up in the same process replaces galaxies' own logger, not the application's.
    const auto again = configure_logging(options{}, "master");
    EXPECT_NE(spdlog::default_logger(), ours);
    EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::info);
  }
  // ... and ends with the session: the fork server of a later run() in this process needs one
  // thread.
  EXPECT_EQ(process::threads_of(::getpid()).size(), threads_before);
}

TEST_F(LogSetup, UnknownFormatOrLevelIsRefused) {
  install_spdlogs_own_default();
  options bad_format;
  bad_format.log_format = "xml";
  EXPECT_THROW((void)configure_logging(bad_format, "master"), std::invalid_argument);
  options bad_level;
  bad_level.log_level = "verbose";  // spdlog would read it as "off", silencing everything
  EXPECT_THROW((void)configure_logging(bad_level, "master"), std::invalid_argument);
  options off;
  off.log_level = "off";
  EXPECT_NO_THROW((void)configure_logging(off, "master"));
}

}  // namespace
}  // namespace galaxies::host
