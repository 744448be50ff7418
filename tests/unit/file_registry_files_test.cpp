// The file registry's directory of row files: what it costs (one changed file, one read per
// watcher), what it refuses (a PATH that is a file, names that are not row files, oversize
// files), what it cleans up (long-expired rows), privacy (0600 files, a 0700 directory), and a
// store that cannot be written (unhealthy, the view stands, recovery). The tests run as root,
// which permission bits do not stop: a store is made unwritable by putting a file where its
// directory was (test::blocked_directory). Every wait is bounded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "base/limits.hpp"
#include "registry/file_registry.hpp"
#include "registry/file_store.hpp"
#include "registry/registry.hpp"
#include "registry/row_checks.hpp"
#include "support/blocked_directory.hpp"
#include "unit/file_registry_support.hpp"

namespace galaxies::registry {
namespace {

using namespace file_test;

struct health_log {
  std::vector<std::pair<std::error_code, std::string>> reports;
  registry::health_handler handler() {
    return
        [this](std::error_code ec, const std::string& detail) { reports.emplace_back(ec, detail); };
  }
  bool healthy() const { return !reports.empty() && !reports.back().first; }
  bool unhealthy() const { return !reports.empty() && reports.back().first; }
};

mode_t mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// The address a view lists for `id`, or "" when it does not list it.
std::string address_in(const view_log& log, const host_id& id) {
  if (log.views.empty()) return {};
  for (const auto& row : log.views.back())
    if (row.id == id) return row.address;
  return {};
}

TEST_F(FileRegistry, RowFilesArePrivateToTheUser) {
  const auto saved = ::umask(0);  // the modes must not depend on a careful umask
  auto a = make("alpha");
  const auto self = make_self("alpha", "127.0.0.1:7001");
  view_log views;
  a->start(self, views.handler(), {});
  const bool seen = run_until(io, [&] { return !views.views.empty(); });
  ::umask(saved);
  ASSERT_TRUE(seen);
  EXPECT_EQ(mode_of(path), 0700u);
  EXPECT_EQ(mode_of(row_path(path, self.id)), 0600u);
  for (const auto& entry : std::filesystem::directory_iterator(path)) {
    EXPECT_EQ(entry.path().filename().string(), file_store::file_name(self.id))
        << "nothing but our row file: no lock, no temp file left behind";
  }
}

TEST_F(FileRegistry, ARowFileLeftReadableByOthersIsPrivateAgainAfterOurNextWrite) {
  // Made by hand or by a careless copy: a row (address, socket path, pid) is nobody else's to
  // read. Every write is a new file renamed over the old one, so it brings its own mode.
  const auto self = make_self("alpha", "127.0.0.1:7001");
  std::filesystem::create_directory(path);
  write_row(path, self, 60000);
  ASSERT_EQ(::chmod(row_path(path, self.id).c_str(), 0644), 0);
  auto a = make("alpha");
  view_log views;
  a->start(self, views.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !views.views.empty(); }));
  EXPECT_EQ(mode_of(row_path(path, self.id)), 0600u);
  EXPECT_TRUE(stored(path, self.id));
}

TEST_F(FileRegistry, ATempFileLeftByACrashMidWriteIsReplacedByOurNextWrite) {
  // A half-written file under our own temp name (this host, this pid). The write creates its temp
  // file exclusively, so the leftover must go first; only then, since an unlink takes the
  // directory's lock even when there is nothing to remove.
  const auto self = make_self("alpha", "127.0.0.1:7001");
  std::filesystem::create_directory(path);
  const auto leftover = path + "/" + file_store::temp_file_name(self.id);
  std::ofstream(leftover) << "{\"id\": \"half";
  // On the test's loop: a refresh on the registry's own thread could be between creating its temp
  // file and renaming it when the test looks.
  auto a = make_direct("alpha");
  view_log views;
  a->start(self, views.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !views.views.empty(); }));
  EXPECT_TRUE(stored(path, self.id));
  EXPECT_FALSE(std::filesystem::exists(leftover));
  EXPECT_EQ(mode_of(row_path(path, self.id)), 0600u);
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// A refresh changes only the expiry: it rewrites the row file in place, which takes no lock of the
// directory's (a new file and a rename take it twice). Anything else, or a file that is no longer
// the one written, goes through a new file again.
TEST_F(FileRegistry, ARefreshRewritesTheRowFileInPlaceAndAnythingElseReplacesIt) {
  auto row = make_self("alpha", "127.0.0.1:7001");
  row.expires_ms = file_store::now_ms() + 60000;
  const auto file = row_path(path, row.id);
  const auto read_back = [&] { return file_store::load_row(path, row.id).row; };
  file_store::written_row last;
  ASSERT_FALSE(file_store::refresh_row(path, row, last));
  const ino_t first = inode_of(file);
  ASSERT_NE(first, 0u);

  row.expires_ms += 1000;
  ASSERT_FALSE(file_store::refresh_row(path, row, last));
  EXPECT_EQ(inode_of(file), first) << "a refresh wrote a new file";
  ASSERT_TRUE(read_back());
  EXPECT_EQ(read_back()->expires_ms, row.expires_ms);
  EXPECT_EQ(file_store::list(path).temps, std::vector<std::string>{});

  row.address = "127.0.0.1:7002";  // same length, but not only the expiry
  ASSERT_FALSE(file_store::refresh_row(path, row, last));
  const ino_t second = inode_of(file);
  EXPECT_NE(second, first);
  ASSERT_TRUE(read_back());
  EXPECT_EQ(read_back()->address, row.address);

  // Made readable by others: replaced by a private file.
  ::chmod(file.c_str(), 0644);
  row.expires_ms += 1000;
  ASSERT_FALSE(file_store::refresh_row(path, row, last));
  EXPECT_NE(inode_of(file), second);
  EXPECT_EQ(mode_of(file), 0600u);

  // Put there by someone else: written over by a new file, never into.
  write_raw(path + "/planted", file_store::serialize(row));
  ::chmod((path + "/planted").c_str(), 0600);
  std::filesystem::rename(path + "/planted", file);
  const ino_t planted = inode_of(file);
  row.expires_ms += 1000;
  ASSERT_FALSE(file_store::refresh_row(path, row, last));
  EXPECT_NE(inode_of(file), planted);
  ASSERT_TRUE(read_back());
  EXPECT_EQ(read_back()->expires_ms, row.expires_ms);

  // Removed: written again.
  std::filesystem::remove(file);
  row.expires_ms += 1000;
  ASSERT_FALSE(file_store::refresh_row(path, row, last));
  ASSERT_TRUE(read_back());
  EXPECT_EQ(read_back()->expires_ms, row.expires_ms);
}

TEST_F(FileRegistry, APathThatIsAFileIsAClearErrorAndIsLeftAlone) {
  // A registry of the format before this one: a single file at PATH.
  const std::string old_registry = R"({"format":1,"hosts":[]})";
  write_raw(path, old_registry);
  auto a = make("alpha");
  view_log views;
  health_log health;
  a->start(make_self("alpha", "127.0.0.1:7001"), views.handler(), health.handler());
  ASSERT_TRUE(run_until(io, [&] { return !health.reports.empty(); }));
  EXPECT_EQ(health.reports[0].first, std::errc::not_a_directory);
  const auto& detail = health.reports[0].second;
  EXPECT_NE(detail.find(path + " exists and is not a directory"), std::string::npos) << detail;
  EXPECT_NE(detail.find("one file per host in a directory"), std::string::npos) << detail;
  EXPECT_TRUE(views.views.empty()) << "no view from a store we could not register in";

  std::optional<std::error_code> read_error;
  a->read([&](std::error_code ec, std::vector<host_record>) { read_error = ec; });
  ASSERT_TRUE(run_until(io, [&] { return read_error.has_value(); }));
  EXPECT_EQ(*read_error, std::errc::not_a_directory);

  stop_and_wait(*a);
  ASSERT_TRUE(std::filesystem::is_regular_file(path)) << "never removed or replaced";
  std::ifstream in(path);
  const std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, old_registry);
}

void unwritable_store_is_unhealthy_and_recovers(asio::io_context& io, const std::string& path,
                                                test::blocked_directory::kind with) {
  auto a = make_registry(io.get_executor(), "file:" + path, "alpha", short_ttl(2000, 100));
  auto b = make_registry(io.get_executor(), "file:" + path, "alpha", short_ttl(2000, 100));
  const auto self_a = make_self("alpha", "127.0.0.1:7001");
  const auto self_b = make_self("alpha", "127.0.0.1:7002");
  view_log view_a, view_b;
  health_log health_a, health_b;
  a->start(self_a, view_a.handler(), health_a.handler());
  b->start(self_b, view_b.handler(), health_b.handler());
  ASSERT_TRUE(run_until(io, [&] {
    return view_a.size() == 2 && view_b.size() == 2 && health_a.healthy() && health_b.healthy();
  }));
  const auto views_a = view_a.views.size();

  std::size_t reported = 0;  // health reports once the store is blocked
  {
    test::blocked_directory blocked(path, with);
    ASSERT_TRUE(run_until(io, [&] { return health_a.unhealthy() && health_b.unhealthy(); }))
        << "the next write fails, and says so";
    EXPECT_NE(health_a.reports.back().second.find(path), std::string::npos)
        << health_a.reports.back().second;
    // A write racing the swap may fail with another error first (a file gone from under it), a
    // change that is reported too; what retries must not do is report again.
    run_for(io, 300ms);
    reported = health_a.reports.size();
    EXPECT_LE(reported, 3u);
    run_for(io, 500ms);  // several refreshes fail meanwhile
    EXPECT_EQ(health_a.reports.size(), reported) << "reported once, not on every retry";
    EXPECT_EQ(view_a.views.size(), views_a) << "the last view stands";
    EXPECT_EQ(view_a.size(), 2u);
  }
  ASSERT_TRUE(run_until(io, [&] {
    return health_a.healthy() && health_b.healthy() && view_a.size() == 2 && view_b.size() == 2 &&
           stored(path, self_a.id) && stored(path, self_b.id);
  })) << "both write again and see each other";
  EXPECT_EQ(health_a.reports.size(), reported + 1) << "healthy again, once";

  // Watching again: a change reaches the other at once, not at a poll.
  auto c = make_registry(io.get_executor(), "file:" + path, "alpha", short_ttl(2000, 100));
  const auto self_c = make_self("alpha", "127.0.0.1:7003");
  c->start(self_c, [](auto&) {}, {});
  EXPECT_TRUE(run_until(io, [&] { return view_a.has(self_c.id) && view_b.has(self_c.id); }));
}

TEST_F(FileRegistry, AStoreReplacedByAFileIsUnhealthyAndRecovers) {
  unwritable_store_is_unhealthy_and_recovers(io, path, test::blocked_directory::kind::file);
}

TEST_F(FileRegistry, AStoreReplacedByALinkToAFileIsUnhealthyAndRecovers) {
  unwritable_store_is_unhealthy_and_recovers(io, path, test::blocked_directory::kind::symlink);
}

TEST_F(FileRegistry, ManyRegistriesConvergeAndOneChangedFileCostsEachWatcherOneRead) {
  constexpr std::size_t n = 32;
  // No refresh during the test: every read counted below is caused by the change it follows.
  const auto opts = no_refresh_within(std::chrono::minutes(2));
  std::vector<std::unique_ptr<file_registry>> regs;
  std::vector<view_log> views(n);
  for (std::size_t i = 0; i < n; ++i) {
    regs.push_back(std::make_unique<file_registry>(io.get_executor(), path, "alpha", opts));
    regs.back()->start(make_self("alpha", "127.0.0.1:" + std::to_string(7001 + i)),
                       views[i].handler(), {});
  }
  const auto all = [&](const std::function<bool(const view_log&)>& holds) {
    return std::all_of(views.begin(), views.end(), holds);
  };
  ASSERT_TRUE(run_until(
      io, [&] { return all([&](const view_log& v) { return v.size() == n; }); }, 20s))
      << "every registry sees all " << n;
  // A view may be complete from a full read while the start-up's own events still wait in the
  // watches' queues. Each watch reads its events in order: once every registry has seen a row
  // written now, it has read all that came before, and the counts below start clean.
  const auto marker = make_self("alpha", "10.0.0.8:8");
  write_row(path, marker, 60000);
  ASSERT_TRUE(
      run_until(io, [&] { return all([&](const view_log& v) { return v.has(marker.id); }); }));

  const auto reads = [&] {
    std::vector<std::uint64_t> counts;
    for (const auto& r : regs) counts.push_back(r->row_files_read());
    return counts;
  };
  const auto expect_each_read = [&](const std::vector<std::uint64_t>& before, std::uint64_t files,
                                    const char* what) {
    const auto after = reads();
    for (std::size_t i = 0; i < n; ++i)
      EXPECT_EQ(after[i] - before[i], files) << "registry " << i << ", " << what;
  };

  // A host appears: one file renamed into place.
  auto ghost = make_self("alpha", "10.0.0.9:9");
  auto before = reads();
  write_row(path, ghost, 60000);
  ASSERT_TRUE(
      run_until(io, [&] { return all([&](const view_log& v) { return v.has(ghost.id); }); }));
  expect_each_read(before, 1, "a new row file");

  // Its row changes (its address: a new view).
  before = reads();
  ghost.address = "10.0.0.9:10";
  write_row(path, ghost, 60000);
  ASSERT_TRUE(run_until(io, [&] {
    return all([&](const view_log& v) { return address_in(v, ghost.id) == "10.0.0.9:10"; });
  }));
  expect_each_read(before, 1, "a changed row file");

  // It goes: nothing to read at all.
  before = reads();
  ASSERT_FALSE(file_store::remove_row(path, ghost.id));
  ASSERT_TRUE(
      run_until(io, [&] { return all([&](const view_log& v) { return !v.has(ghost.id); }); }));
  expect_each_read(before, 0, "a removed row file");
}

TEST_F(FileRegistry, AFloodOfRowFilesCostsOneBoundedScan) {
  captured_log log;
  file_registry a(io.get_executor(), path, "alpha", no_refresh_within(std::chrono::minutes(2)));
  const auto self = make_self("alpha", "127.0.0.1:7001");
  view_log views;
  a.start(self, views.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !views.views.empty(); }));
  run_for(io, 100ms);

  // More new row files than one batch may name, all written while the loop does not run: the
  // batch is abandoned for one full read, which examines at most max_registry_files entries.
  const auto before = a.row_files_read();
  const std::size_t flood = limits::max_registry_files + 50;
  for (std::size_t i = 0; i < flood; ++i) write_row(path, make_self("alpha", "10.0.0.1:1"), 60000);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == limits::max_registry_hosts; }));
  const auto read = a.row_files_read() - before;
  EXPECT_LE(read, limits::max_registry_files) << "one bounded scan, not one read per name";
  EXPECT_GE(read, limits::max_registry_files - 1);
  EXPECT_TRUE(views.has(self.id));
  EXPECT_EQ(log.count("entries in the directory; reading the first only"), 1u) << log.text();
}

TEST_F(FileRegistry, ALongExpiredRowFileIsCollectedARecentlyExpiredOneIsNot) {
  captured_log log;
  std::filesystem::create_directory(path);
  // The grace is max(10 x ttl, 60 s): 60 s here.
  const auto long_dead = make_self("alpha", "10.0.0.1:1");
  const auto long_dead_elsewhere = make_self("beta", "10.0.0.2:2");  // dead is dead
  const auto recent = make_self("alpha", "10.0.0.3:3");
  write_row(path, long_dead, -61000);
  write_row(path, long_dead_elsewhere, -120000);
  write_row(path, recent, -1000);
  // Temp files: one abandoned by a crash two minutes ago, one of a write in flight.
  const auto abandoned = path + "/" + "." + file_store::file_name(long_dead.id) + ".tmp.4242";
  const auto in_flight = path + "/" + "." + file_store::file_name(recent.id) + ".tmp.4243";
  write_raw(abandoned, "{");
  write_raw(in_flight, "{");
  const timespec old_times[2] = {{::time(nullptr) - 120, 0}, {::time(nullptr) - 120, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, abandoned.c_str(), old_times, 0), 0);

  auto a = make("alpha", short_ttl(300));
  view_log views;
  a->start(make_self("alpha", "127.0.0.1:7001"), views.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !views.views.empty(); }));
  EXPECT_EQ(views.size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(row_path(path, long_dead.id)));
  EXPECT_FALSE(std::filesystem::exists(row_path(path, long_dead_elsewhere.id)));
  EXPECT_TRUE(stored(path, recent.id)) << "within its grace: the owner may only be stalled";
  EXPECT_EQ(log.count("removed the row of host " + long_dead.id.to_string()), 1u) << log.text();
  EXPECT_FALSE(std::filesystem::exists(abandoned));
  EXPECT_TRUE(std::filesystem::exists(in_flight));

  // A host that crashes while we run is collected too, once its grace has passed: here, by a
  // registry that refreshes (and so looks for garbage) long after writing it.
  write_row(path, recent, -59950);
  ASSERT_TRUE(run_until(io, [&] { return !std::filesystem::exists(row_path(path, recent.id)); }))
      << "collected on a refresh once 60 s expired";
}

TEST_F(FileRegistry, NamesThatAreNotRowFilesAndOversizeFilesAreIgnored) {
  captured_log log;
  std::filesystem::create_directory(path);
  const auto planted = make_self("alpha", "10.0.0.5:5");
  auto planted_row = planted;
  planted_row.expires_ms = file_store::now_ms() + 60000;
  const auto text = file_store::serialize(planted_row);
  auto upper = file_store::file_name(planted.id);
  std::transform(upper.begin(), upper.end() - 5, upper.begin(), ::toupper);
  const std::vector<std::string> ignored = {"README", "registry.json",
                                            "." + file_store::file_name(planted.id) + ".tmp.1",
                                            file_store::file_name(planted.id) + ".bak", upper};
  const auto plant = [&] {
    for (const auto& name : ignored) write_raw(path + "/" + name, text);
  };
  plant();
  // A row file of a real name, padded far beyond any row: skipped without being parsed.
  const auto oversize = make_self("alpha", "10.0.0.6:6");
  auto padded = nlohmann::json::parse(file_store::serialize(oversize));
  padded["expires_ms"] = file_store::now_ms() + 60000;
  padded["padding"] = std::string(file_store::max_row_file_size, ' ');
  write_raw(row_path(path, oversize.id), padded.dump());
  EXPECT_EQ(file_store::load_row(path, oversize.id).skipped, row_error::not_json);

  file_registry a(io.get_executor(), path, "alpha", no_refresh_within(std::chrono::minutes(2)));
  const auto self = make_self("alpha", "127.0.0.1:7001");
  view_log views;
  a.start(self, views.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !views.views.empty(); }));
  EXPECT_EQ(views.size(), 1u) << "none of them is a row";
  EXPECT_EQ(log.count("'" + file_store::file_name(oversize.id) + "'"), 1u) << log.text();
  for (const auto& name : ignored) EXPECT_EQ(log.count(name + "'"), 0u) << name;

  // Written again while we watch: they cost nothing, not even a read. A real row file written
  // after them marks the moment their events have been handled.
  run_for(io, 200ms);
  const auto before = a.row_files_read();
  plant();
  const auto marker = make_self("alpha", "10.0.0.7:7");
  write_row(path, marker, 60000);
  ASSERT_TRUE(run_until(io, [&] { return views.has(marker.id); }));
  EXPECT_EQ(a.row_files_read() - before, 1u) << "only the marker was read";
  EXPECT_EQ(views.size(), 2u);
}

}  // namespace
}  // namespace galaxies::registry
