// `galaxies events` and `galaxies status --watch`, run as a user runs them against real hosts.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "support/cluster.hpp"
#include "support/eventually.hpp"
#include "support/host_tools.hpp"

namespace galaxies::test {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A CLI process whose stdout and stderr go to files; stopped by PID.
class cli_process {
 public:
  cli_process(const fs::path& dir, const std::string& name, std::vector<std::string> args)
      : out_(dir / (name + ".out")), err_(dir / (name + ".err")) {
    tools::unique_fd out(::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    tools::unique_fd err(::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    args.insert(args.begin(), cli_path());
    pid_ = tools::spawn(args, out.get(), err.get());
  }
  ~cli_process() { stop(); }

  std::string out() const { return read_file(out_); }
  std::string err() const { return read_file(err_); }
  // SIGTERM, then SIGKILL after 5 s; the wait status.
  int stop() {
    if (pid_ < 0) return status_;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (::waitpid(pid_, &status_, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
    return status_;
  }

 private:
  fs::path out_;
  fs::path err_;
  pid_t pid_ = -1;
  int status_ = 0;
};

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST(ObserverCli, EventsStreamsACrashAndTheReplacementAsTheyHappen) {
  cluster c("events");
  auto& a = c.add_host(with_workers(2));
  auto& b = c.add_host(with_workers(1));
  ASSERT_EQ(a.wait_started(2).size(), 2u);
  ASSERT_EQ(b.wait_started(1).size(), 1u);
  const std::string host_a = a.host_id();
  ASSERT_FALSE(host_a.empty());

  cli_process events(c.dir(), "events",
                     {"events", "--json", "--cluster", c.name(), "--registry", c.registry_url(),
                      "--host", host_a.substr(0, 8)});
  ASSERT_TRUE(eventually(10s, [&] {
    return events.err().find("watching host") != std::string::npos;
  })) << events.err();

  // A worker of the other host crashes: host a's master sees it leave and its replacement join.
  const auto status = b.status();
  ASSERT_FALSE(status.is_null());
  const int victim = status["status"]["workers"][0]["pid"].get<int>();
  ASSERT_GT(victim, 0);
  ASSERT_EQ(::kill(victim, SIGKILL), 0);

  int replacement = 0;
  ASSERT_TRUE(eventually(15s, [&] {
    bool left = false;
    for (const auto& e : json_lines(events.out())) {
      if (e["event"] == "node_left" && e["pid"] == victim) {
        EXPECT_EQ(e["reason"], "exited");
        EXPECT_EQ(e["exit"], "killed by signal 9");
        left = true;
      } else if (left && e["event"] == "node_joined" && e["pid"] != victim) {
        replacement = e["pid"].get<int>();
      }
    }
    return left && replacement != 0;
  })) << events.out();
  // Every line is an event of this cluster, in order, each once.
  std::uint64_t last_seq = 0;
  for (const auto& e : json_lines(events.out())) {
    EXPECT_GT(e["seq"].get<std::uint64_t>(), last_seq);
    last_seq = e["seq"].get<std::uint64_t>();
  }
  const int end = events.stop();
  EXPECT_TRUE(WIFSIGNALED(end) && WTERMSIG(end) == SIGTERM) << end;
}

TEST(ObserverCli, StatusWatchRefreshesATableOfWorkersAndLinks) {
  cluster c("watch");
  auto& a = c.add_host(with_workers(2));
  auto& b = c.add_host(with_workers(1));
  ASSERT_EQ(a.wait_started(2).size(), 2u);
  ASSERT_EQ(b.wait_started(1).size(), 1u);
  const std::string host_b = b.host_id();

  cli_process watch(c.dir(), "watch",
                    {"status", "--watch", "--interval-ms", "200", "--cluster", c.name(),
                     "--registry", c.registry_url()});
  const auto count = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  // Two refreshes at least, each with every worker of both hosts and a's link to b with a rate.
  ASSERT_TRUE(eventually(15s,
                         [&] {
                           const std::string out = watch.out();
                           if (count(out, "\x1b[2J") < 2) return false;
                           const std::string last = out.substr(out.rfind("\x1b[2J"));
                           for (const int pid : a.worker_pids())
                             if (last.find(std::to_string(pid)) == std::string::npos) return false;
                           return last.find(host_b.substr(0, 8)) != std::string::npos &&
                                  last.find("linked") != std::string::npos &&
                                  last.find("/s") != std::string::npos;
                         }))
      << watch.out() << watch.err();
  watch.stop();
}

}  // namespace
}  // namespace galaxies::test
