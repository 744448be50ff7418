// The embedded file registry (a directory, one row file per host): discovery, expiry,
// compare-and-swap removal, cluster isolation and robustness against damaged row files. Everything
// runs on one io_context in the test thread; every wait is bounded by a deadline, never a
// sleep-and-hope.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "registry/file_store.hpp"
#include "registry/registry.hpp"
#include "registry/row_checks.hpp"
#include "support/eventually.hpp"
#include "unit/file_registry_support.hpp"

namespace galaxies::registry {
namespace {

using namespace file_test;

TEST_F(FileRegistry, TwoRegistriesSeeEachOtherAndStopRemovesTheRow) {
  auto a = make("alpha");
  auto b = make("alpha");
  const auto self_a = make_self("alpha", "127.0.0.1:7001");
  const auto self_b = make_self("alpha", "127.0.0.1:7002");
  view_log view_a, view_b;
  a->start(self_a, view_a.handler(), {});
  b->start(self_b, view_b.handler(), {});

  ASSERT_TRUE(run_until(io, [&] { return view_a.size() == 2 && view_b.size() == 2; }));
  EXPECT_TRUE(view_a.has(self_b.id));
  EXPECT_TRUE(view_b.has(self_a.id));
  const auto& seen = view_a.views.back();
  const auto b_row =
      std::find_if(seen.begin(), seen.end(), [&](auto& r) { return r.id == self_b.id; });
  EXPECT_EQ(b_row->address, self_b.address);
  EXPECT_EQ(b_row->unix_path, self_b.unix_path);
  EXPECT_EQ(b_row->hostname, self_b.hostname);
  EXPECT_EQ(b_row->pid, self_b.pid);

  stop_and_wait(*b);
  EXPECT_FALSE(stored(path, self_b.id)) << "stop() removes the row at once";
  ASSERT_TRUE(run_until(io, [&] { return !view_a.has(self_b.id); }));
  EXPECT_EQ(view_a.size(), 1u);

  stop_and_wait(*a);
  EXPECT_TRUE(file_store::load(path).rows.empty());
}

TEST_F(FileRegistry, OnViewRunsOnceAtStartAndNotOnAPureRefresh) {
  auto a = make("alpha", short_ttl(300, 50));
  const auto self = make_self("alpha", "127.0.0.1:7001");
  view_log views;
  a->start(self, views.handler(), {});
  EXPECT_TRUE(views.views.empty()) << "the first view is posted, not delivered inside start()";
  ASSERT_TRUE(run_until(io, [&] { return !views.views.empty(); }));
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views.views.back()[0].id, self.id);
  const auto first_expiry = file_store::load(path).rows.at(0).expires_ms;

  run_for(io, 400ms);  // several refreshes, each rewriting the file
  EXPECT_GT(file_store::load(path).rows.at(0).expires_ms, first_expiry) << "refreshed";
  EXPECT_EQ(views.views.size(), 1u) << "an expiry change alone is not a new view";
}

TEST_F(FileRegistry, RefreshKeepsRowsAlivePastSeveralTtls) {
  // ttl 500 ms, refresh 100 ms: a row flickers only if the loop stalls for 400 ms.
  auto a = make("alpha", short_ttl(500, 100));
  auto b = make("alpha", short_ttl(500, 100));
  const auto self_a = make_self("alpha", "127.0.0.1:7001");
  const auto self_b = make_self("alpha", "127.0.0.1:7002");
  view_log view_a;
  a->start(self_a, view_a.handler(), {});
  b->start(self_b, [](auto&) {}, {});
  ASSERT_TRUE(run_until(io, [&] { return view_a.size() == 2; }));
  const auto views_before = view_a.views.size();

  run_for(io, 1500ms);
  EXPECT_EQ(view_a.views.size(), views_before) << "b never left a's view";
  EXPECT_TRUE(view_a.has(self_b.id));
  EXPECT_TRUE(stored(path, self_b.id));
}

TEST_F(FileRegistry, RowOfARegistryDestroyedWithoutStopExpires) {
  auto a = make("alpha", short_ttl(5000));
  auto b = make("alpha", short_ttl(300));
  const auto self_a = make_self("alpha", "127.0.0.1:7001");
  const auto self_b = make_self("alpha", "127.0.0.1:7002");
  view_log view_a, view_b;
  a->start(self_a, view_a.handler(), {});
  b->start(self_b, view_b.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return view_a.size() == 2 && view_b.size() == 2; }));

  // A crash: no stop(), so the row stays behind until it expires.
  const auto b_views = view_b.views.size();
  b.reset();
  EXPECT_TRUE(stored(path, self_b.id)) << "destruction does not remove the row";
  const auto crashed_at = clock_type::now();
  ASSERT_TRUE(run_until(io, [&] { return !view_a.has(self_b.id); }))
      << "no file change happens: the expiry timer must notice";
  EXPECT_LT(clock_type::now() - crashed_at, 2s);
  EXPECT_EQ(view_b.views.size(), b_views) << "no callback after destruction";
}

TEST_F(FileRegistry, ReadsHandWrittenRowsAndExpiresThem) {
  const auto now = file_store::now_ms();
  const auto fake = host_id::random();
  const auto other_cluster = host_id::random();
  const auto expired = host_id::random();
  // The documented format, written by hand, as another implementation would.
  std::filesystem::create_directory(path);
  const auto row_text = [](const host_id& id, const char* cluster, const char* address, int pid,
                           std::int64_t expires_ms) {
    return R"({"format":2,"id":")" + id.to_string() + R"(","cluster":")" + cluster +
           R"(","address":")" + address + R"(","unix":"/run/x.sock","hostname":"far","pid":)" +
           std::to_string(pid) + R"(,"expires_ms":)" + std::to_string(expires_ms) + "}\n";
  };
  write_raw(row_path(path, fake), row_text(fake, "alpha", "10.0.0.9:9", 42, now + 1000));
  write_raw(row_path(path, other_cluster),
            row_text(other_cluster, "beta", "10.0.0.8:8", 43, now + 60000));
  write_raw(row_path(path, expired), row_text(expired, "alpha", "10.0.0.7:7", 44, now - 1));

  auto a = make("alpha", short_ttl(5000));
  const auto self = make_self("alpha", "127.0.0.1:7001");
  view_log views;
  a->start(self, views.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !views.views.empty(); }));
  ASSERT_EQ(views.size(), 2u) << "self and the live row of this cluster";
  EXPECT_TRUE(views.has(fake));
  const auto& row = views.views.back()[views.views.back()[0].id == fake ? 0 : 1];
  EXPECT_EQ(row.address, "10.0.0.9:9");
  EXPECT_EQ(row.unix_path, "/run/x.sock");
  EXPECT_EQ(row.hostname, "far");
  EXPECT_EQ(row.pid, 42u);

  EXPECT_TRUE(stored(path, expired)) << "a row just expired is left for its garbage grace";
  EXPECT_TRUE(stored(path, other_cluster)) << "other clusters' rows are not ours to touch";

  ASSERT_TRUE(run_until(io, [&] { return !views.has(fake); }))
      << "no file changes: the expiry timer must notice";
  EXPECT_EQ(views.size(), 1u);
}

TEST_F(FileRegistry, RemoveStaleIsACompareAndSwapAndALiveOwnerComesBack) {
  // On this loop: each removal is done when the call returns, and b's refresh cannot slip in
  // before the check.
  auto a = make_direct("alpha", short_ttl(5000));
  auto b = make_direct("alpha", short_ttl(600, 150));
  const auto self_a = make_self("alpha", "127.0.0.1:7001");
  const auto self_b = make_self("alpha", "127.0.0.1:7002");
  view_log view_a;
  a->start(self_a, view_a.handler(), {});
  b->start(self_b, [](auto&) {}, {});
  ASSERT_TRUE(run_until(io, [&] { return view_a.size() == 2; }));

  a->remove_stale(self_b.id, "127.0.0.1:9999");
  EXPECT_TRUE(stored(path, self_b.id)) << "same id, other address: kept";
  a->remove_stale(host_id::random(), self_b.address);
  EXPECT_TRUE(stored(path, self_b.id)) << "same address, other id: kept";
  a->remove_stale(self_a.id, self_a.address);
  EXPECT_TRUE(stored(path, self_a.id)) << "our own row is never stale";

  a->remove_stale(self_b.id, self_b.address);
  EXPECT_FALSE(stored(path, self_b.id)) << "id and address match: removed";
  ASSERT_TRUE(run_until(io, [&] { return stored(path, self_b.id); }))
      << "the live owner re-creates its row on its next refresh";
  ASSERT_TRUE(run_until(io, [&] { return view_a.has(self_b.id); }));
}

TEST_F(FileRegistry, OtherClustersInTheSameDirectoryAreInvisible) {
  auto a = make("alpha", short_ttl(300, 50));
  auto b = make("beta", short_ttl(300, 50));
  const auto self_a = make_self("alpha", "127.0.0.1:7001");
  const auto self_b = make_self("beta", "127.0.0.1:7002");
  view_log view_a, view_b;
  a->start(self_a, view_a.handler(), {});
  b->start(self_b, view_b.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !view_a.views.empty() && !view_b.views.empty(); }));

  run_for(io, 300ms);  // both rewrite their files several times
  EXPECT_EQ(view_a.views.size(), 1u);
  EXPECT_EQ(view_b.views.size(), 1u);
  EXPECT_EQ(view_a.size(), 1u);
  EXPECT_EQ(view_b.size(), 1u);
  EXPECT_TRUE(stored(path, self_a.id));
  EXPECT_TRUE(stored(path, self_b.id));

  auto reader = make("beta");
  const auto rows = read_rows(*reader);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].id, self_b.id);
}

TEST_F(FileRegistry, ACorruptRowFileIsToleratedLoggedOnceAndRewrittenByItsOwner) {
  captured_log log;
  const auto self_a = make_self("alpha", "127.0.0.1:7001");
  const auto self_b = make_self("alpha", "127.0.0.1:7002");
  // Left damaged by an earlier life of a (a full disk, a hand edit): its first write replaces it.
  std::filesystem::create_directory(path);
  constexpr char garbage[] = "\x00\xff{{ not json";
  write_raw(row_path(path, self_a.id), std::string(garbage, sizeof garbage - 1));
  auto a = make("alpha", short_ttl(400, 100));
  // b refreshes seldom: the damage below must last until the watches read it (at the next point
  // of the registry_watch_grain grid), not be overwritten by b's next refresh before anyone looks.
  auto b = make("alpha", short_ttl(4500, 1500));
  view_log view_a;
  a->start(self_a, view_a.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !view_a.views.empty(); }));
  EXPECT_EQ(view_a.size(), 1u);
  EXPECT_TRUE(stored(path, self_a.id)) << "the first write repairs the file";

  b->start(self_b, [](auto&) {}, {});
  ASSERT_TRUE(run_until(io, [&] { return view_a.size() == 2; }));
  const auto views_before = view_a.views.size();

  // Damaged while running, in place, by a writer that ignores the temp-and-rename rule, just
  // after one of b's refreshes: the next is a refresh period away, the watches read within a grain.
  const auto b_file = file_store::file_name(self_b.id);
  const auto expiry = [&] {
    const auto got = file_store::load_row(path, self_b.id);
    return got.row ? got.row->expires_ms : 0;
  };
  const auto written = expiry();
  ASSERT_TRUE(run_until(io, [&] { return expiry() != written; })) << "b refreshes";
  write_raw(row_path(path, self_b.id), "{\"format\":2,\"id\":");
  ASSERT_TRUE(run_until(io, [&] { return log.count("'" + b_file + "'") >= 1; }))
      << "the damaged file is read and said so\n"
      << log.text();
  ASSERT_TRUE(run_until(io, [&] { return stored(path, self_b.id); })) << "its owner rewrites it";

  // A format this version does not know counts as damaged too.
  write_raw(row_path(path, self_b.id), R"({"format":99})");
  EXPECT_EQ(file_store::load_row(path, self_b.id).skipped, row_error::bad_format);
  ASSERT_TRUE(run_until(io, [&] { return stored(path, self_b.id); }));
  run_for(io, 150ms);
  EXPECT_EQ(view_a.views.size(), views_before)
      << "a damaged file says nothing about its host: what a knew of b stands";
  EXPECT_TRUE(view_a.has(self_b.id));
  EXPECT_LE(log.count("'" + b_file + "'"), 2u) << "once per reader (a, and b itself)";
}

TEST_F(FileRegistry, MalformedRowFilesAreSkippedNotFatal) {
  const auto good = host_id::random();
  const auto text = [&](const std::string& fields) {
    return R"({"format":2,"id":")" + good.to_string() + R"(","cluster":"alpha",)" + fields + "}";
  };
  host_record row;
  EXPECT_FALSE(file_store::parse(text(R"("address":"10.0.0.2:2","expires_ms":9)"), row));
  EXPECT_EQ(row.id, good);
  EXPECT_EQ(row.address, "10.0.0.2:2");
  EXPECT_EQ(row.expires_ms, 9);
  EXPECT_EQ(file_store::parse(text(R"("address":"10.0.0.1:1")"), row), row_error::bad_expiry);
  EXPECT_EQ(file_store::parse(text(R"("address":"10.0.0.1:1","pid":-1,"expires_ms":1)"), row),
            row_error::bad_pid);
  EXPECT_EQ(file_store::parse(R"({"format":2,"id":"nope","cluster":"alpha",
      "address":"10.0.0.1:1","expires_ms":1})",
                              row),
            row_error::bad_id);
  EXPECT_EQ(file_store::parse("17", row), row_error::not_an_object);
  EXPECT_EQ(file_store::parse("", row), row_error::not_json);
  EXPECT_EQ(file_store::parse(R"({"id":"x"})", row), row_error::bad_format) << "no format";
  EXPECT_EQ(file_store::parse(R"({"format":1,"hosts":[]})", row), row_error::bad_format)
      << "the single file of format 1";

  auto self = make_self("alpha", "127.0.0.1:1");
  self.expires_ms = 123;
  ASSERT_FALSE(file_store::parse(file_store::serialize(self), row));
  EXPECT_EQ(row, self) << "serialize and parse round-trip every field";

  // Filed under another host's name: skipped, whatever it says.
  std::filesystem::create_directory(path);
  const auto other = host_id::random();
  write_raw(row_path(path, other), file_store::serialize(self));
  EXPECT_EQ(file_store::load_row(path, other).skipped, row_error::foreign_key);
  EXPECT_TRUE(file_store::load_row(path, host_id::random()).missing());

  self.hostname = "bad\xff utf-8";
  EXPECT_NO_THROW(file_store::serialize(self)) << "a write must never throw from the loop";
}

TEST_F(FileRegistry, AFifoNamedLikeARowFileDoesNotHang) {
  std::filesystem::create_directory(path);
  const auto fifo_id = host_id::random();
  ASSERT_EQ(::mkfifo(row_path(path, fifo_id).c_str(), 0600), 0);
  auto a = make("alpha");
  std::optional<std::error_code> result;
  a->read([&](std::error_code ec, std::vector<host_record>) { result = ec; });
  ASSERT_TRUE(run_until(io, [&] { return result.has_value(); }));
  EXPECT_FALSE(*result) << "skipped, not an error of the whole store";
  EXPECT_EQ(file_store::load_row(path, fifo_id).skipped, row_error::not_a_file);

  view_log views;
  a->start(make_self("alpha", "127.0.0.1:7001"), views.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !views.views.empty(); }));
  EXPECT_EQ(views.size(), 1u);
}

TEST_F(FileRegistry, AFifoAtThePathDoesNotHang) {
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto a = make("alpha");
  std::optional<std::error_code> result;
  a->read([&](std::error_code ec, std::vector<host_record>) { result = ec; });
  ASSERT_TRUE(run_until(io, [&] { return result.has_value(); }));
  EXPECT_EQ(*result, std::errc::not_a_directory) << "an error, not a hang";
}

TEST_F(FileRegistry, ReadPostsItsCompletionAndDoesNotRegister) {
  auto reader = make("alpha");
  std::optional<std::vector<host_record>> rows;
  reader->read([&](std::error_code ec, std::vector<host_record> r) {
    EXPECT_FALSE(ec) << "a missing file is an empty registry";
    rows = std::move(r);
  });
  EXPECT_FALSE(rows.has_value()) << "never completed inline";
  ASSERT_TRUE(run_until(io, [&] { return rows.has_value(); }));
  EXPECT_TRUE(rows->empty());
  EXPECT_FALSE(std::filesystem::exists(path)) << "reading writes nothing";

  auto a = make_direct("alpha");  // its row is written when start() returns
  const auto self = make_self("alpha", "127.0.0.1:7001");
  a->start(self, [](auto&) {}, {});
  const auto now_stored = read_rows(*reader);
  ASSERT_EQ(now_stored.size(), 1u);
  EXPECT_EQ(now_stored[0].id, self.id);
  EXPECT_EQ(reader->describe(), "file:" + path);
}

TEST_F(FileRegistry, StopIsIdempotentAndDestructionSilencesEverything) {
  auto a = make("alpha");
  int stopped = 0;
  a->stop([&] { ++stopped; });
  EXPECT_EQ(stopped, 0) << "posted, not inline";
  a->stop([&] { ++stopped; });
  ASSERT_TRUE(run_until(io, [&] { return stopped == 2; })) << "safe without start()";

  auto b = make("alpha", short_ttl(200, 20));
  int calls = 0;
  b->start(make_self("alpha", "127.0.0.1:7002"), [&](auto&) { ++calls; }, {});
  b->read([&](std::error_code, std::vector<host_record>) { ++calls; });
  b->stop([&] { ++calls; });
  b.reset();
  run_for(io, 100ms);
  EXPECT_EQ(calls, 0) << "no callback after destruction";

  auto c = make("alpha", short_ttl(200, 20));
  c->start(make_self("alpha", "127.0.0.1:7003"), [&](auto&) { ++calls; }, {});
  ASSERT_TRUE(run_until(io, [&] { return calls == 1; }));
  c.reset();  // with timers and the watch armed
  run_for(io, 100ms);
  EXPECT_EQ(calls, 1);
}

TEST_F(FileRegistry, OnViewMayStopTheRegistry) {
  auto a = make("alpha");
  bool stopped = false;
  a->start(make_self("alpha", "127.0.0.1:7001"), [&](auto&) { a->stop([&] { stopped = true; }); },
           {});
  ASSERT_TRUE(run_until(io, [&] { return stopped; }));
  EXPECT_TRUE(file_store::load(path).rows.empty());
}

TEST_F(FileRegistry, CreatesAPrivateDirectoryAndLeaksNoInheritableFd) {
  std::set<int> before;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    before.insert(std::stoi(entry.path().filename().string()));
  }
  const std::string nested = dir.path() + "/a/b/alpha.registry";
  auto a = make_registry(io.get_executor(), "file:" + nested, "alpha", short_ttl());
  view_log views;
  a->start(make_self("alpha", "127.0.0.1:7001"), views.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !views.views.empty(); }));

  for (const auto& created : {dir.path() + "/a/b", nested}) {
    struct stat st {};
    ASSERT_EQ(::stat(created.c_str(), &st), 0) << created;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << created;
  }
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(entry.path().filename().string());
    if (before.count(fd)) continue;
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) continue;  // the directory_iterator's own fd, already closed
    EXPECT_TRUE(flags & FD_CLOEXEC)
        << "fd " << fd << " -> " << std::filesystem::read_symlink(entry.path());
  }
}

TEST(RegistryUrl, BadUrlsAndNamesThrowClearMessages) {
  asio::io_context io;
  const auto message = [&](std::string_view url, std::string_view cluster = "alpha") {
    try {
      make_registry(io.get_executor(), url, cluster);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_NE(message("http://example.com").find("file:PATH"), std::string::npos);
  EXPECT_NE(message("").find("unknown registry URL"), std::string::npos);
  EXPECT_NE(message("file:").find("names no directory"), std::string::npos);
  EXPECT_NE(message("file:/").find("names no directory"), std::string::npos);
  EXPECT_NE(message("file:/tmp/..").find("names no directory"), std::string::npos);
  EXPECT_EQ(message("file:/tmp/dir/"), "no exception") << "a directory, with its slash";
  EXPECT_NE(message("file://host/x.json").find("remote host"), std::string::npos);
  // Each backend checks its own URL form; a well-formed URL constructs without touching the store.
  // A backend left out of the build refuses every URL of its scheme, naming the build option.
  if (GALAXIES_WITH_REDIS) {
    EXPECT_NE(message("redis://h:0").find("bad port"), std::string::npos) << message("redis://h:0");
    EXPECT_EQ(message("redis://127.0.0.1:6379"), "no exception");
  } else {
    EXPECT_NE(message("redis://127.0.0.1:6379").find("GALAXIES_WITH_REDIS=OFF"), std::string::npos);
  }
  if (GALAXIES_WITH_ETCD) {
    EXPECT_NE(message("etcd://").find("etcd://"), std::string::npos) << message("etcd://");
    EXPECT_EQ(message("etcd://127.0.0.1:2379"), "no exception");
  } else {
    EXPECT_NE(message("etcd://127.0.0.1:2379").find("GALAXIES_WITH_ETCD=OFF"), std::string::npos);
  }
  for (const std::string_view cluster : {"", "a b", "a/b", "../x", "é"}) {
    EXPECT_NE(message("file:/tmp/x.json", cluster).find("invalid cluster name"), std::string::npos)
        << cluster;
  }
  EXPECT_NE(message("file:/tmp/x.json", std::string(65, 'a')).find("invalid cluster name"),
            std::string::npos);
  EXPECT_EQ(message("file:/tmp/x.json", std::string(64, 'a')), "no exception");
  EXPECT_EQ(message("file:///tmp/x.json", "My-cluster_1.0"), "no exception");
  EXPECT_EQ(message("file:relative.registry"), "no exception");
}

TEST(RegistryUrl, DefaultUrlIsPerUserAndPerCluster) {
  const char* saved = std::getenv("XDG_RUNTIME_DIR");
  const std::optional<std::string> restore =
      saved ? std::optional<std::string>(saved) : std::nullopt;

  ::unsetenv("XDG_RUNTIME_DIR");
  const std::string tmp_dir = "/tmp/galaxies-" + std::to_string(::geteuid());
  EXPECT_EQ(host::default_registry_url("alpha"), "file:" + tmp_dir + "/alpha.registry");
  EXPECT_NE(host::default_registry_url("alpha"), host::default_registry_url("beta"));

  temp_dir runtime;
  ::setenv("XDG_RUNTIME_DIR", runtime.path().c_str(), 1);
  EXPECT_EQ(host::default_registry_url("alpha"),
            "file:" + runtime.path() + "/galaxies/alpha.registry");
  ::setenv("XDG_RUNTIME_DIR", (runtime.path() + "/missing").c_str(), 1);
  EXPECT_EQ(host::default_registry_url("alpha"), "file:" + tmp_dir + "/alpha.registry");
  ::setenv("XDG_RUNTIME_DIR", "relative", 1);
  EXPECT_EQ(host::default_registry_url("alpha"), "file:" + tmp_dir + "/alpha.registry");
  EXPECT_THROW(host::default_registry_url("../etc"), std::invalid_argument);

  if (restore) {
    ::setenv("XDG_RUNTIME_DIR", restore->c_str(), 1);
  } else {
    ::unsetenv("XDG_RUNTIME_DIR");
  }
}

}  // namespace
}  // namespace galaxies::registry
