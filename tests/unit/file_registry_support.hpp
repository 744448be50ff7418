// Helpers of the file registry's unit tests: a private temp dir, bounded runs of one io_context,
// rows, row files, a captured log, and a fixture making registries on a directory in that dir.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "base/clock_grid.hpp"
#include "host/registry_factory.hpp"
#include "registry/file_registry.hpp"
#include "registry/file_store.hpp"
#include "registry/registry.hpp"
#include "support/eventually.hpp"

namespace galaxies::registry::file_test {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using host::make_registry;

// Generous: a loaded 2-core machine must never turn a slow run into a failure.
constexpr auto deadline = 5s;

class temp_dir {
 public:
  temp_dir() {
    char pattern[] = "/tmp/galaxies-registry-test-XXXXXX";
    if (!::mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs handlers until `done` holds or the deadline passes.
inline bool run_until(asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = deadline) {
  return galaxies::test::run_until(io, done, limit);
}

// Runs handlers for a while: for tests whose claim is "nothing happens during this time".
inline void run_for(asio::io_context& io, std::chrono::milliseconds span) {
  const auto until = clock_type::now() + span;
  while (clock_type::now() < until) {
    io.restart();
    io.run_until(until);
    if (io.stopped() && clock_type::now() < until) std::this_thread::sleep_for(1ms);
  }
}

inline host_record make_self(std::string cluster, std::string address) {
  host_record self;
  self.id = host_id::random();
  self.cluster = std::move(cluster);
  self.address = std::move(address);
  self.unix_path = "/tmp/galaxies-test-" + self.id.to_string() + ".sock";
  self.hostname = "testhost";
  self.pid = static_cast<std::uint32_t>(::getpid());
  return self;
}

// Records every view a registry reports.
struct view_log {
  std::vector<std::vector<host_record>> views;

  registry::view_handler handler() {
    return [this](const std::vector<host_record>& view) { views.push_back(view); };
  }
  bool has(const host_id& id) const {
    if (views.empty()) return false;
    const auto& last = views.back();
    return std::any_of(last.begin(), last.end(), [&](const host_record& r) { return r.id == id; });
  }
  std::size_t size() const { return views.empty() ? 0 : views.back().size(); }
};

// True when the registry directory `dir` holds a valid row file for `id`.
inline bool stored(const std::string& dir, const host_id& id) {
  return file_store::load_row(dir, id).row.has_value();
}

// The path of `id`'s row file in the registry directory `dir`.
inline std::string row_path(const std::string& dir, const host_id& id) {
  return dir + "/" + file_store::file_name(id);
}

inline void write_raw(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Writes `row` as its owner would, with an expiry `expires_in_ms` from now.
inline void write_row(const std::string& dir, host_record row, std::int64_t expires_in_ms) {
  row.expires_ms = file_store::now_ms() + expires_in_ms;
  if (const auto ec = file_store::write_row(dir, row))
    throw std::system_error(ec, "write_row " + dir);
}

// Sends every log line of the test to a string, and restores the default logger afterwards.
// make_registry's file backend logs from a thread of its own: the text is read under the sink's
// lock.
class captured_log {
 public:
  captured_log() : sink_(std::make_shared<string_sink>()), saved_(spdlog::default_logger()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink_));
  }
  ~captured_log() { spdlog::set_default_logger(saved_); }
  captured_log(const captured_log&) = delete;
  captured_log& operator=(const captured_log&) = delete;

  std::string text() const { return sink_->text(); }
  std::size_t count(std::string_view needle) const {
    const auto all = text();
    std::size_t n = 0;
    for (auto at = all.find(needle); at != std::string::npos; at = all.find(needle, at + 1)) ++n;
    return n;
  }

 private:
  class string_sink final : public spdlog::sinks::base_sink<std::mutex> {
   public:
    std::string text() {
      const std::lock_guard lock(mutex_);
      return text_;
    }

   protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
      spdlog::memory_buf_t line;
      formatter_->format(msg, line);
      text_.append(line.data(), line.size());
    }
    void flush_() override {}

   private:
    std::string text_;
  };

  std::shared_ptr<string_sink> sink_;
  std::shared_ptr<spdlog::logger> saved_;
};

inline options short_ttl(int ttl_ms = 300, int refresh_ms = 0) {
  options opts;
  opts.ttl = std::chrono::milliseconds(ttl_ms);
  opts.refresh = std::chrono::milliseconds(refresh_ms);
  return opts;
}

// Options for a test that counts reads and must see no refresh of its own registries for `quiet`
// from now. Refreshes keep to a machine-wide grid of whole periods (base/clock_grid.hpp), so the
// first one comes anywhere within a period of the start, however long the period: the period is
// chosen so that the first grid point lies at least `quiet` away.
inline options no_refresh_within(std::chrono::milliseconds quiet) {
  using namespace std::chrono_literals;
  const auto now = std::chrono::steady_clock::now();
  auto period = 2 * quiet;
  while (base::next_period(now, period) - now < quiet) period += 1ms;
  return short_ttl(static_cast<int>(3 * period.count()), static_cast<int>(period.count()));
}

class FileRegistry : public ::testing::Test {
 protected:
  std::unique_ptr<registry> make(std::string_view cluster, options opts = short_ttl()) {
    return make_registry(io.get_executor(), "file:" + path, cluster, opts);
  }
  // The backend itself, on the test's loop rather than a thread of its own: each call has done
  // its file work when it returns (make_registry's one posts it to its thread).
  std::unique_ptr<file_registry> make_direct(std::string_view cluster, options opts = short_ttl()) {
    return std::make_unique<file_registry>(io.get_executor(), path, std::string(cluster), opts);
  }
  // What one read() of `r` returns, once it has completed without an error.
  std::vector<host_record> read_rows(registry& r) {
    std::optional<std::vector<host_record>> rows;
    r.read([&](std::error_code ec, std::vector<host_record> got) {
      EXPECT_FALSE(ec) << ec.message();
      rows = std::move(got);
    });
    EXPECT_TRUE(run_until(io, [&] { return rows.has_value(); })) << "read() never completed";
    return rows.value_or(std::vector<host_record>{});
  }
  void stop_and_wait(registry& r) {
    bool done = false;
    r.stop([&] { done = true; });
    ASSERT_TRUE(run_until(io, [&] { return done; }));
  }

  asio::io_context io;
  temp_dir dir;
  // The registry's directory, created by the first registry that writes its row.
  std::string path = dir.path() + "/alpha.registry";
};

}  // namespace galaxies::registry::file_test
