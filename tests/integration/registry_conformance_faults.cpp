// The registry conformance suite, the store in trouble: refusing connections, silent (SIGSTOP;
// for the file backend, a directory that cannot be written), crashed and restarted, lost by one
// host only; and the fault launchers themselves. Same fixture
// and timings as registry_conformance_test.cpp (registry_conformance.hpp).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/ip/tcp.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "registry/file_store.hpp"
#include "registry_conformance.hpp"
#include "support/blocked_directory.hpp"
#include "support/eventually.hpp"
#include "support/host_tools.hpp"

namespace galaxies::registry::conformance {
namespace {

std::string path_of(const std::string& file_url) {
  return file_url.substr(std::string_view("file:").size());
}

// The file backend's host cut off alone: a directory where its next write's temp file goes
// (file_store.hpp: DIR/.UUID.json.tmp.PID), which not even root can open as a file, and its row
// file replaced by a copy of itself, which a refresh does not rewrite in place (it writes only
// into the file it renamed there). Only that host's writes fail; the others, and every read
// (the copy included), go on.
class blocked_writer {
 public:
  blocked_writer(const std::string& file_url, const host_id& id)
      : path_(path_of(file_url) + "/" + file_store::temp_file_name(id)) {
    if (::mkdir(path_.c_str(), 0700) != 0)
      throw std::system_error(errno, std::system_category(), "mkdir " + path_);
    const std::string row = path_of(file_url) + "/" + file_store::file_name(id);
    const std::string copy = path_of(file_url) + "/copy-of-a-row";
    std::filesystem::copy_file(row, copy);
    std::filesystem::permissions(
        copy, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    std::filesystem::rename(copy, row);
  }
  ~blocked_writer() { heal(); }

  void heal() {
    if (std::exchange(healed_, true)) return;
    ::rmdir(path_.c_str());
  }

 private:
  std::string path_;
  bool healed_ = false;
};

// ---- the store in trouble -----------------------------------------------------------------------

TEST_P(RegistryConformance, UnreachableStoreReportsAnErrorAndDoesNotHang) {
  std::string url;
  if (kind_ == backend::file) {
    // A regular file where the directory should be: unwritable even for root.
    const auto blocker = dir_.path() / "not-a-directory";
    std::ofstream(blocker) << "x";
    url = "file:" + (blocker / "registry").string();
  } else {
    url = std::string(name()) + "://127.0.0.1:" + std::to_string(test::free_loopback_port());
  }
  auto a = make_registry(io.get_executor(), url, cluster_, ttl_of(short_ttl()));
  recorder rec;
  const auto started = clock_type::now();
  a->start(make_self(cluster_, 1), rec.view_handler(), rec.health_handler());
  EXPECT_LT(clock_type::now() - started, 1s) << "start() does not block on the store";
  ASSERT_TRUE(run_until(
      io, [&] { return !rec.health.empty(); }, refused_bound + 5s));
  EXPECT_LT(clock_type::now() - started, refused_bound)
      << "a store refusing us is reported at once";
  EXPECT_TRUE(rec.unhealthy()) << "the first report says the store cannot be reached";
  EXPECT_FALSE(rec.health.front().detail.empty()) << "with a human-readable reason";
  for (const auto& view : rec.views) {
    EXPECT_TRUE(ids_of(view).size() <= 1u) << "nothing but self can be known";
  }

  read_result result;
  a->read([&](std::error_code ec, std::vector<host_record> rows) {
    result.ec = ec;
    result.rows = std::move(rows);
  });
  ASSERT_TRUE(run_until(
      io, [&] { return result.done(); }, refused_bound + 5s));
  EXPECT_TRUE(*result.ec) << "read() reports the failure rather than an empty cluster";

  bool stopped = false;
  a->stop([&] { stopped = true; });
  ASSERT_TRUE(run_until(
      io, [&] { return stopped; }, refused_bound + 5s))
      << "stop() completes";
}

TEST_P(RegistryConformance, PausedStoreReportsAnErrorWhileTheLastViewStands) {
  const auto url = private_store();
  const auto ttl = 2 * short_ttl();
  auto a = join(1, ttl_of(ttl), url);
  auto b = join(2, ttl_of(ttl), url);
  auto c = join(3, ttl_of(ttl), url);
  const std::set<host_id> three{a->self.id, b->self.id, c->self.id};
  ASSERT_TRUE(run_until(io, [&] {
    return a->rec.sees_exactly(three) && b->rec.sees_exactly(three) && a->rec.healthy() &&
           b->rec.healthy() && c->rec.healthy();
  }));
  const auto views_a = a->rec.views.size();
  const auto views_b = b->rec.views.size();

  // A server accepts connections and never answers; a file registry's directory is replaced by
  // a regular file, which stops every write, root's included.
  std::unique_ptr<test::blocked_directory> blocked;
  if (has_server()) {
    own_server_->pause();
  } else {
    blocked = std::make_unique<test::blocked_directory>(path_of(url));
  }
  const auto paused = clock_type::now();
  // Whatever is asked of a silent store ends, with an error, within the request timeout.
  auto d = join(4, ttl_of(ttl), url);
  bool c_stopped = false;
  c->reg->stop([&] { c_stopped = true; });
  auto reader = make(ttl_of(ttl), url);
  read_result read;
  reader->read([&](std::error_code ec, std::vector<host_record> rows) {
    read.ec = ec;
    read.rows = std::move(rows);
  });
  const bool noticed = run_until(
      io,
      [&] {
        return a->rec.unhealthy() && b->rec.unhealthy() && d->rec.unhealthy() && c_stopped &&
               read.done();
      },
      unanswered_bound(ttl));
  const auto took = std::chrono::duration_cast<ms>(clock_type::now() - paused);
  EXPECT_TRUE(noticed) << "within " << unanswered_bound(ttl).count() << " ms";
  EXPECT_TRUE(a->rec.unhealthy() && b->rec.unhealthy()) << "registered hosts report the outage";
  EXPECT_TRUE(d->rec.unhealthy()) << "a host starting now reports the store unreachable";
  EXPECT_TRUE(c_stopped) << "stop() completes although the row could not be removed";
  EXPECT_TRUE(read.done() && *read.ec) << "read() fails rather than hang or report no hosts";
  if (noticed) run_for(io, 1s);  // and nothing else happens while it stays silent
  for (const auto* m : {a.get(), b.get(), d.get()}) {
    ASSERT_FALSE(m->rec.health.empty());
    EXPECT_FALSE(m->rec.health.back().detail.empty()) << "the error says why";
  }
  EXPECT_EQ(a->rec.views.size(), views_a) << "the last view stands: no row reported gone";
  EXPECT_EQ(b->rec.views.size(), views_b);
  EXPECT_TRUE(a->rec.sees_exactly(three));
  EXPECT_TRUE(b->rec.sees_exactly(three));
  for (const auto& view : d->rec.views) EXPECT_LE(view.size(), 1u) << "d can know only itself";
  std::cout << "[ info     ] " << name() << ": silent store noticed after " << took.count()
            << " ms (ttl " << ttl.count() << " ms)\n";

  if (has_server()) {
    own_server_->resume();
  } else {
    blocked->release();
  }
  // c's row goes by its delete arriving late or by expiry; a, b and d re-register as needed.
  const std::set<host_id> live{a->self.id, b->self.id, d->self.id};
  ASSERT_TRUE(run_until(
      io,
      [&] {
        return a->rec.healthy() && b->rec.healthy() && d->rec.healthy() &&
               a->rec.sees_exactly(live) && b->rec.sees_exactly(live) && d->rec.sees_exactly(live);
      },
      deadline + ttl))
      << "healthy again with the right view";
  EXPECT_TRUE(store_holds(live, url));
}

TEST_P(RegistryConformance, StoreRestartedEveryoneComesBack) {
  const auto url = private_store();
  // Refreshes 10 s apart for the servers: what the hosts learn soon after the restart comes from
  // re-established watches and subscriptions, not from a lucky refresh. A deleted directory is
  // repaired at once by each host seeing its own row file go.
  const auto ttl = has_server() ? ms(30s) : 2 * short_ttl();
  auto a = join(1, ttl_of(ttl), url);
  auto b = join(2, ttl_of(ttl), url);
  const std::set<host_id> both{a->self.id, b->self.id};
  ASSERT_TRUE(run_until(io, [&] {
    return a->rec.sees_exactly(both) && b->rec.sees_exactly(both) && a->rec.healthy() &&
           b->rec.healthy();
  }));

  const auto outage = [&](bool keep_data) {
    if (has_server()) {
      own_server_->kill();  // a crash
      EXPECT_TRUE(run_until(
          io, [&] { return a->rec.unhealthy() && b->rec.unhealthy(); }, unanswered_bound(ttl)))
          << "the outage is reported";
      own_server_->restart(keep_data);
    } else {
      // The file's equivalent of a store that lost its contents; no outage to report. A host's
      // write can put a file in between remove_all's listing and its rmdir: removed again then.
      std::error_code removed;
      for (int tries = 0; tries < 100; ++tries) {
        std::filesystem::remove_all(path_of(url), removed);
        if (!removed) break;
      }
      ASSERT_FALSE(removed) << removed.message();
    }
    ASSERT_TRUE(run_until(
        io,
        [&] {
          return a->rec.healthy() && b->rec.healthy() && a->rec.sees_exactly(both) &&
                 b->rec.sees_exactly(both);
        },
        deadline + (has_server() ? 0s : ttl)))
        << "both are healthy and see each other again";
    EXPECT_TRUE(store_holds(both, url)) << "both rows are back in the store";
  };
  // etcd restarts with its data (leases restart at their full TTL); Redis, without persistence,
  // restarts empty; the file registry's directory is deleted.
  outage(true);
  if (kind_ == backend::etcd) outage(false);  // a new, empty etcd: revisions restart at 1
  if (!has_server()) {
    EXPECT_EQ(a->rec.errors() + b->rec.errors(), 0u) << "a deleted directory is no outage";
  }

  auto c = join(3, ttl_of(ttl), url);
  const auto c_started = clock_type::now();
  const std::set<host_id> all{a->self.id, b->self.id, c->self.id};
  ASSERT_TRUE(run_until(io, [&] {
    return a->rec.sees_exactly(all) && b->rec.sees_exactly(all) && c->rec.sees_exactly(all);
  })) << "a host joining after the restart is seen by everyone";
  if (has_server()) {
    EXPECT_LT(clock_type::now() - c_started, notice) << "through the re-established watch";
  }
}

// One host loses the store while the others keep it: what happened meanwhile (one host left,
// another joined) reaches it when it is back, although it did not report it meanwhile. A server
// is cut off through a relay for that host alone; a file registry's host loses its writes alone
// (blocked_writer), the one way a host sharing the directory can be cut off.
TEST_P(RegistryConformance, AHostCutOffFromTheStoreCatchesUpWhenBack) {
  std::unique_ptr<test::loopback_proxy> relay;
  std::string a_url = url();
  if (has_server()) {
    const auto port = static_cast<std::uint16_t>(std::stoi(url().substr(url().rfind(':') + 1)));
    relay = std::make_unique<test::loopback_proxy>(port);
    a_url = std::string(name()) + "://127.0.0.1:" + std::to_string(relay->port());
  }
  // a refreshes every 10 s: it catches up through its reconnection, not a lucky refresh.
  auto a = join(1, ttl_of(30s), a_url);
  auto b = join(2, ttl_of(long_ttl));
  ASSERT_TRUE(run_until(io, [&] {
    return a->rec.sees_exactly({a->self.id, b->self.id}) && a->rec.healthy() &&
           b->rec.sees_exactly({a->self.id, b->self.id});
  }));
  const auto views_a = a->rec.views.size();

  std::unique_ptr<blocked_writer> cut_off;
  if (relay) {
    relay->cut();
  } else {
    cut_off = std::make_unique<blocked_writer>(url(), a->self.id);
  }
  ASSERT_TRUE(run_until(
      io, [&] { return a->rec.unhealthy(); }, unanswered_bound(30s)))
      << "a notices it lost the store";
  bool b_stopped = false;
  b->reg->stop([&] { b_stopped = true; });
  auto c = join(3, ttl_of(long_ttl));
  ASSERT_TRUE(run_until(io, [&] {
    return b_stopped && c->rec.sees_exactly({a->self.id, c->self.id});
  })) << "the others go on; a's row lives on";
  run_for(io, 300ms);
  EXPECT_EQ(a->rec.views.size(), views_a) << "a's last view stands while it is cut off";

  if (relay) {
    relay->heal();
  } else {
    cut_off->heal();
  }
  const auto healed = clock_type::now();
  ASSERT_TRUE(run_until(io, [&] {
    return a->rec.healthy() && a->rec.sees_exactly({a->self.id, c->self.id});
  })) << "a reads everything again: b is gone, c is there";
  std::cout << "[ info     ] " << name() << ": caught up "
            << std::chrono::duration_cast<ms>(clock_type::now() - healed).count()
            << " ms after the store came back\n";
  EXPECT_TRUE(c->rec.sees_exactly({a->self.id, c->self.id}));
}

// ---- the launcher itself ------------------------------------------------------------------------

// True when a TCP connection to 127.0.0.1:port is accepted within `timeout`.
bool accepts_tcp(std::uint16_t port, ms timeout) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  bool connected = false;
  socket.async_connect({asio::ip::make_address_v4("127.0.0.1"), port},
                       [&](std::error_code ec) { connected = !ec; });
  io.run_for(timeout);
  return connected;
}

// The faults the suite injects do what they claim: a paused server accepts connections but
// answers nothing; a restart keeps the port; a killed server refuses connections.
void exercise(test::store_server& server, const std::string& scheme) {
  EXPECT_EQ(server.url(), scheme + "://127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(server.running());
  EXPECT_TRUE(server.answers(2s));

  server.pause();
  EXPECT_TRUE(accepts_tcp(server.port(), 2s)) << "the kernel still accepts while paused";
  EXPECT_FALSE(server.answers(300ms)) << "but nothing answers";
  server.resume();
  EXPECT_TRUE(server.answers(2s));

  const auto port = server.port();
  const auto first_pid = server.pid();
  server.kill();
  EXPECT_FALSE(server.running());
  EXPECT_FALSE(accepts_tcp(port, 2s)) << "a killed server's port refuses connections";
  server.restart();
  EXPECT_EQ(server.port(), port);
  EXPECT_NE(server.pid(), first_pid);
  EXPECT_TRUE(server.answers(2s));

  server.pause();
  server.stop();  // SIGTERM reaches a paused server too
  EXPECT_FALSE(server.running());
}

TEST(StoreServer, EtcdPausesRestartsOnItsPortAndStops) {
  if (!test::etcd_server::available()) GTEST_SKIP() << "etcd is not on PATH";
  test::etcd_server server;
  EXPECT_NE(server.peer_port(), server.port());
  exercise(server, "etcd");
}

TEST(StoreServer, RedisPausesRestartsOnItsPortAndStops) {
  if (!test::redis_server::available()) GTEST_SKIP() << "redis-server is not on PATH";
  test::redis_server server;
  exercise(server, "redis");
}

}  // namespace
}  // namespace galaxies::registry::conformance
