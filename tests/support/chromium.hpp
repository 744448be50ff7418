// Headless Chromium driven over the Chrome DevTools Protocol, for tests that load a page and read
// what it rendered. The browser speaks CDP on two pipes (--remote-debugging-pipe): fd 3 carries
// commands to it and fd 4 its replies and events, each a JSON message ended by a NUL byte.
//
// SAFETY: a browser opens connections of its own (updates, safe browsing, DNS). It is started only
// inside a network namespace the test made (support/isolation.hpp), where nothing can leave the
// machine: the constructor refuses anywhere else. It exits by itself when its command pipe
// closes, so a test that dies leaves no browser behind.
//
// Threading: one chromium object is used from one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace galaxies::test {

using namespace std::chrono_literals;

// A failure of the browser or of the protocol: it exited, did not answer in time, or refused a
// command. Not thrown for what a page's script throws (see chromium::evaluate).
struct chromium_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An exception thrown by an evaluated expression (a page that is not ready yet, a typo).
struct page_script_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class chromium {
 public:
  // The browser's path ("chromium" found in PATH), or "" when it is not installed.
  static std::string find_binary();

  // Starts the browser with a profile under `dir` (which must exist) and its output appended to
  // dir/chromium.log. Throws chromium_error when it cannot be started or when this process is
  // not isolated (netns::isolation_problem()).
  explicit chromium(const std::filesystem::path& dir);
  // Stops it by PID: SIGTERM, SIGKILL after a grace period, then reaps it.
  ~chromium();
  chromium(const chromium&) = delete;
  chromium& operator=(const chromium&) = delete;

  pid_t pid() const { return pid_; }
  const std::filesystem::path& log_path() const { return log_path_; }
  std::string log() const;  // what the browser wrote so far (bounded to the last 64 KiB)

  // One CDP command; waits for its reply, skipping events. Returns the reply's "result".
  // `session` addresses a page attached with open() ("" = the browser itself).
  nlohmann::json call(const std::string& method, const nlohmann::json& params,
                      const std::string& session = {}, std::chrono::milliseconds timeout = 30s);

  // Opens `url` in a new page and attaches to it; returns the session id for evaluate().
  // Does not wait for the page to load.
  std::string open(const std::string& url, std::chrono::milliseconds timeout = 30s);

  // Evaluates a JavaScript expression in the page and returns its value as JSON (undefined gives
  // null). Throws page_script_error when the expression throws, chromium_error otherwise.
  nlohmann::json evaluate(const std::string& session, const std::string& expression,
                          std::chrono::milliseconds timeout = 10s);

 private:
  void send(const std::string& message, std::chrono::steady_clock::time_point until);
  // The next whole message from the browser; throws chromium_error past `until` or at EOF.
  std::string receive(std::chrono::steady_clock::time_point until);
  void stop() noexcept;

  std::filesystem::path log_path_;
  pid_t pid_ = -1;
  int to_browser_ = -1;
  int from_browser_ = -1;
  std::string buffer_;  // bytes read past the last whole message
  long next_id_ = 1;
};

}  // namespace galaxies::test
