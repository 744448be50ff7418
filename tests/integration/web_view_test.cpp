// The web view in a real browser: headless Chromium loads host 0's page (`--http`) from a running
// 3-host cluster and shows every host and worker, and a group joined by a node of host 0; a worker
// killed on host 1 disappears from the page, its replacement appears and its departure is listed,
// all without the page reloading.
//
// SAFETY: the browser opens connections of its own. This binary brings its own main(): it runs
// inside a fresh network namespace with only `lo` (support/isolation.hpp), or every test skips.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "support/chromium.hpp"
#include "support/cluster.hpp"
#include "support/eventually.hpp"
#include "support/isolation.hpp"
#include "support/netns.hpp"

namespace galaxies::test {
namespace {

using clock = std::chrono::steady_clock;

constexpr std::size_t host_count = 3;
constexpr std::size_t workers_per_host = 2;
constexpr auto formation_deadline = 30s;
// The page polls every second; a cold browser start on a loaded machine takes a few more.
constexpr auto page_deadline = 30s;
// Checked between two page reads: a poll of the page is a CDP round trip, not a busy loop.
constexpr auto page_poll = 100ms;

// What the page shows, read from its DOM in one evaluation.
constexpr const char* read_page = R"js((() => {
  if (!document.body || !document.getElementById('hosts')) return null;
  const attrs = (selector, name) =>
      [...document.querySelectorAll(selector)].map((e) => e.getAttribute(name));
  return {
    polls: Number(document.body.dataset.polls || 0),
    connection: document.getElementById('connection').dataset.state || '',
    hosts: attrs('#hosts .card[data-host]', 'data-host'),
    pids: attrs('#hosts .worker[data-pid]', 'data-pid').map(Number),
    events: [...document.querySelectorAll('#events tbody tr')].map((tr) => ({
      event: tr.dataset.event || '',
      pid: Number(tr.dataset.eventPid || 0),
      reason: tr.dataset.reason || '',
    })),
    groups: [...document.querySelectorAll('#groups tbody tr')].map((tr) => ({
      group: tr.dataset.group || '',
      cells: [...tr.cells].map((td) => td.textContent),
    })),
    marker: window.__marker === undefined ? null : window.__marker,
  };
})())js";

struct page_view {
  int polls = 0;
  std::string connection;
  std::set<std::string> hosts;
  std::set<int> pids;
  nlohmann::json events;
  nlohmann::json groups;
  nlohmann::json marker;
  nlohmann::json raw;

  bool lists_departure(int pid, const std::string& reason) const {
    return std::any_of(events.begin(), events.end(), [&](const nlohmann::json& e) {
      return e.value("event", "") == "node_left" && e.value("pid", 0) == pid &&
             e.value("reason", "") == reason;
    });
  }
};

// Worker pids of a host, as its master lists its nodes; empty when it does not answer.
std::set<int> worker_pids(const host_process& h) {
  std::set<int> pids;
  const auto s = h.status();
  if (s.is_null()) return pids;
  for (const auto& n : s["status"].value("nodes", nlohmann::json::array()))
    if (n.value("kind", "") == "worker" && n.value("pid", 0) > 0) pids.insert(n.value("pid", 0));
  return pids;
}

// Every host lists the others as linked, each with all its workers.
bool cluster_formed(cluster& c) {
  for (std::size_t i = 0; i < c.size(); ++i) {
    const auto s = c.host(i).status();
    if (s.is_null()) return false;
    std::size_t linked = 0;
    for (const auto& p : s["status"].value("peers", nlohmann::json::array()))
      if (p.value("state", "") == "linked" && p.value("nodes", 0) == int(workers_per_host))
        ++linked;
    if (linked != c.size() - 1) return false;
  }
  return true;
}

class web_view : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!netns::unavailable_reason().empty())
      GTEST_SKIP() << "the web view test needs isolation: " << netns::unavailable_reason();
    if (chromium::find_binary().empty()) GTEST_SKIP() << "chromium is not installed";
  }

  // Reads the page until `done` holds; false after `deadline`. Errors while the page is loading
  // (no document yet, a context replaced) are retried; the last one is kept for the message.
  bool wait_page(chromium& browser, const std::string& session, std::chrono::milliseconds deadline,
                 const std::function<bool(const page_view&)>& done) {
    return eventually(
        deadline,
        [&] {
          try {
            const auto value = browser.evaluate(session, read_page);
            if (value.is_null()) return false;
            last_page_.raw = value;
            last_page_.polls = value.value("polls", 0);
            last_page_.connection = value.value("connection", "");
            last_page_.hosts = value["hosts"].get<std::set<std::string>>();
            last_page_.pids = value["pids"].get<std::set<int>>();
            last_page_.events = value["events"];
            last_page_.groups = value["groups"];
            last_page_.marker = value["marker"];
            last_error_.clear();
            return done(last_page_);
          } catch (const std::exception& e) {
            last_error_ = e.what();
            return false;
          }
        },
        page_poll);
  }

  std::string page_problem(const chromium& browser) const {
    const std::string log = browser.log();
    constexpr std::size_t tail = 4000;
    return "last page read: " + last_page_.raw.dump() +
           (last_error_.empty() ? "" : "\nlast error: " + last_error_) + "\nbrowser log (tail):\n" +
           log.substr(log.size() > tail ? log.size() - tail : 0);
  }

  page_view last_page_;
  std::string last_error_;
};

double ms_since(clock::time_point start) {
  return std::chrono::duration<double, std::milli>(clock::now() - start).count();
}

TEST_F(web_view, shows_the_cluster_and_follows_a_worker_crash_without_reloading) {
  const auto start = clock::now();
  cluster c("web");
  host_options opts = with_workers(workers_per_host);
  opts.extra_args = {"--http", "127.0.0.1:0"};
  for (std::size_t i = 0; i < host_count; ++i) c.add_host(opts);
  for (std::size_t i = 0; i < host_count; ++i)
    ASSERT_EQ(c.host(i).wait_started(workers_per_host, formation_deadline).size(), workers_per_host)
        << c.host(i).log();
  ASSERT_TRUE(eventually(formation_deadline, [&] { return cluster_formed(c); }))
      << "host 0 status: " << c.host(0).status().dump();

  std::set<std::string> host_ids;
  std::set<int> pids;
  for (std::size_t i = 0; i < host_count; ++i) {
    host_ids.insert(c.host(i).host_id());
    for (int pid : worker_pids(c.host(i))) pids.insert(pid);
  }
  ASSERT_EQ(host_ids.size(), host_count);
  ASSERT_EQ(pids.size(), host_count * workers_per_host);
  // A node of host 0 in a group: the page lists it with its members, in all and on host 0.
  test_node member(c.host(0).unix_path(), c.name());
  ASSERT_TRUE(member.wait_ready()) << c.host(0).log();
  std::error_code joined = make_error_code(errc::not_connected);
  member.run([&](node& n) { joined = n.join("lobby"); });
  ASSERT_FALSE(joined) << joined.message();

  std::string http;
  ASSERT_TRUE(eventually(formation_deadline,
                         [&] {
                           const auto s = c.host(0).status();
                           http = s.is_null() ? "" : s["status"].value("http", "");
                           return !http.empty();
                         }))
      << "host 0 does not show its HTTP address: " << c.host(0).status().dump();
  const double formed_ms = ms_since(start);

  const auto browser_dir = c.dir() / "browser";
  std::filesystem::create_directories(browser_dir);
  chromium browser(browser_dir);
  const auto opened = clock::now();
  const std::string session = browser.open("http://" + http + "/");

  ASSERT_TRUE(wait_page(browser, session, page_deadline,
                        [&](const page_view& p) {
                          return p.polls >= 1 && p.hosts == host_ids &&
                                 std::includes(p.pids.begin(), p.pids.end(), pids.begin(),
                                               pids.end());
                        }))
      << "want hosts and pids of all 3 hosts; " << page_problem(browser);
  ASSERT_TRUE(wait_page(
      browser, session, page_deadline,
      [&](const page_view& p) {
        return p.groups == nlohmann::json{{{"group", "lobby"}, {"cells", {"lobby", "1", "1"}}}};
      }))
      << "want the group lobby with its one member, on this host; " << page_problem(browser);
  const double shown_ms = ms_since(opened);
  EXPECT_EQ(last_page_.connection, "live");
  const auto marker = browser.evaluate(session, "window.__marker = Math.random()");
  ASSERT_TRUE(marker.is_number());

  // A worker of host 1 dies; its master respawns it (a new node, a new pid).
  const std::set<int> before = worker_pids(c.host(1));
  ASSERT_EQ(before.size(), workers_per_host);
  const int victim = *before.begin();
  const auto killed = clock::now();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  int replacement = 0;
  ASSERT_TRUE(eventually(formation_deadline,
                         [&] {
                           for (int pid : worker_pids(c.host(1)))
                             if (!before.contains(pid)) replacement = pid;
                           return replacement != 0;
                         }))
      << "host 1 never respawned its worker: " << c.host(1).status().dump();

  // A worker killed by a signal leaves with reason "exited" (galaxies::leave_reason; there is no
  // "crashed"): its own master adds how it ended, which host 0's page may not know.
  const int polls_before = last_page_.polls;
  ASSERT_TRUE(wait_page(browser, session, page_deadline,
                        [&](const page_view& p) {
                          return !p.pids.contains(victim) && p.pids.contains(replacement) &&
                                 p.lists_departure(victim, "exited");
                        }))
      << "want pid " << victim << " gone, " << replacement << " shown and its node_left; "
      << page_problem(browser);
  const double followed_ms = ms_since(killed);
  EXPECT_GT(last_page_.polls, polls_before);
  // The same document all along: a reload would have dropped the marker.
  EXPECT_EQ(last_page_.marker, marker);
  EXPECT_EQ(browser.evaluate(session, "window.__marker"), marker);

  std::printf(
      "[web view] cluster formed in %.0f ms; page showed it %.0f ms after opening; "
      "the crash shown %.0f ms after the kill (%d polls)\n",
      formed_ms, shown_ms, followed_ms, last_page_.polls);
}

}  // namespace
}  // namespace galaxies::test

int main(int argc, char** argv) {
  galaxies::test::netns::run_isolated(argc, argv,
                                      {.name = "web view", .tools = {"ip"}, .loopback_up = true});
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
