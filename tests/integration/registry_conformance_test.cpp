// The registry conformance suite, what every registry does: discovery through the store's watch,
// refresh, stop, expiry, concurrent registration, remove_stale, read and URLs; the same tests for
// every backend (the fixture and the timings are in registry_conformance.hpp).
#include "registry_conformance.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <atomic>
#include <iostream>
#include <latch>
#include <mutex>
#include <thread>

namespace galaxies::registry::conformance {
namespace {

// ---- discovery ----------------------------------------------------------------------------------

TEST_P(RegistryConformance, TwoRegistriesSeeEachOtherThroughTheWatch) {
  auto a = join(1, ttl_of(long_ttl));
  EXPECT_TRUE(a->rec.views.empty()) << "the first view is posted, never delivered inside start()";
  EXPECT_TRUE(a->rec.health.empty()) << "health is posted, never delivered inside start()";
  ASSERT_TRUE(run_until(io, [&] { return a->rec.healthy() && !a->rec.views.empty(); }))
      << "a registers and reports its first view";
  EXPECT_EQ(a->rec.last_ids(), std::set<host_id>{a->self.id}) << "the view includes self";

  const auto b_started = clock_type::now();
  auto b = join(2, ttl_of(long_ttl));
  ASSERT_TRUE(run_until(io, [&] {
    return a->rec.sees_exactly({a->self.id, b->self.id}) &&
           b->rec.sees_exactly({a->self.id, b->self.id});
  }));
  // a's next refresh is 5 s away: only the store's watch/notification can have told it this soon.
  EXPECT_LT(clock_type::now() - b_started, notice) << "a saw b through the watch, not a poll";

  const auto& seen = a->rec.views.back();
  const auto row =
      std::find_if(seen.begin(), seen.end(), [&](auto& r) { return r.id == b->self.id; });
  ASSERT_NE(row, seen.end());
  EXPECT_EQ(row->cluster, cluster_);
  EXPECT_EQ(row->address, b->self.address);
  EXPECT_EQ(row->unix_path, b->self.unix_path);
  EXPECT_EQ(row->hostname, b->self.hostname);
  EXPECT_EQ(row->pid, b->self.pid);
  EXPECT_EQ(a->rec.errors() + b->rec.errors(), 0u);
}

TEST_P(RegistryConformance, RefreshKeepsRowsAliveAndIsNoViewChange) {
  // Refreshing six times per TTL, a row lapses only if a loaded machine stalls the loop for most
  // of a TTL: a flicker here is a backend's fault, not the machine's.
  const auto ttl = short_ttl();
  auto a = join(1, ttl_of(ttl, ttl / 6));
  auto b = join(2, ttl_of(ttl, ttl / 6));
  ASSERT_TRUE(run_until(io, [&] {
    return a->rec.sees_exactly({a->self.id, b->self.id}) &&
           b->rec.sees_exactly({a->self.id, b->self.id}) && a->rec.healthy() && b->rec.healthy();
  }));
  const auto views_a = a->rec.views.size();
  const auto views_b = b->rec.views.size();

  run_for(io, 3 * ttl);  // each row lives only through its refreshes now
  EXPECT_EQ(a->rec.views.size(), views_a) << "a refresh alone is no new view; nobody flickered";
  EXPECT_EQ(b->rec.views.size(), views_b);
  EXPECT_TRUE(a->rec.sees_exactly({a->self.id, b->self.id}));
  EXPECT_EQ(a->rec.health.size(), 1u) << "registered is reported once, not on every refresh";
  EXPECT_EQ(b->rec.health.size(), 1u);
  const auto stored = read_store();
  EXPECT_EQ(ids_of(stored.rows), (std::set<host_id>{a->self.id, b->self.id})) << "both stored";
}

TEST_P(RegistryConformance, OtherClustersOnTheSameStoreAreInvisible) {
  auto a = join(1, ttl_of(long_ttl));
  const std::string own_cluster = cluster_;
  // A name that extends the other: a key prefix without a terminator would mix them up.
  cluster_ = own_cluster + "-b";
  auto b = join(2, ttl_of(long_ttl));
  ASSERT_TRUE(run_until(io, [&] { return a->rec.healthy() && b->rec.healthy(); }));
  ASSERT_TRUE(run_until(io, [&] { return !a->rec.views.empty() && !b->rec.views.empty(); }));
  run_for(io, 500ms);  // a watch event of the other cluster would arrive in milliseconds
  EXPECT_EQ(a->rec.last_ids(), std::set<host_id>{a->self.id});
  EXPECT_EQ(b->rec.last_ids(), std::set<host_id>{b->self.id});
  EXPECT_EQ(a->rec.views.size(), 1u) << "another cluster's row is not a change";
  EXPECT_EQ(ids_of(read_store().rows), std::set<host_id>{b->self.id});
  cluster_ = own_cluster;
  EXPECT_EQ(ids_of(read_store().rows), std::set<host_id>{a->self.id});
}

// ---- leaving ------------------------------------------------------------------------------------

TEST_P(RegistryConformance, StopRemovesTheRowPromptlyAndIsIdempotent) {
  auto a = join(1, ttl_of(long_ttl));
  auto b = join(2, ttl_of(long_ttl));
  ASSERT_TRUE(run_until(io, [&] { return a->rec.sees_exactly({a->self.id, b->self.id}); }));

  int stops = 0;
  b->reg->stop([&] { ++stops; });
  const auto stop_called = clock_type::now();
  ASSERT_TRUE(run_until(io, [&] { return stops == 1; })) << "stop() completes";
  EXPECT_EQ(ids_of(read_store().rows), std::set<host_id>{a->self.id})
      << "done runs once the row is gone";
  ASSERT_TRUE(run_until(io, [&] { return a->rec.sees_exactly({a->self.id}); }));
  EXPECT_LT(clock_type::now() - stop_called, notice) << "removed, not left to expire (TTL 15 s)";

  b->reg->stop([&] { ++stops; });
  ASSERT_TRUE(run_until(io, [&] { return stops == 2; })) << "a second stop() completes too";
  run_for(io, 200ms);
  EXPECT_EQ(stops, 2) << "each done runs once";

  auto idle = make(ttl_of(long_ttl));
  bool idle_stopped = false;
  idle->stop([&] { idle_stopped = true; });
  ASSERT_TRUE(run_until(io, [&] { return idle_stopped; })) << "stop() without start()";
  EXPECT_EQ(ids_of(read_store().rows), std::set<host_id>{a->self.id});
}

TEST_P(RegistryConformance, NoCallbackAfterDestruction) {
  // Destroyed with everything in flight: registration, a read and a stop.
  int b_calls = 0;
  auto b = make(ttl_of(short_ttl()));
  b->start(
      make_self(cluster_, 2), [&](auto&) { ++b_calls; }, [&](auto, auto&) { ++b_calls; });
  b->read([&](std::error_code, std::vector<host_record>) { ++b_calls; });
  b->stop([&] { ++b_calls; });
  b.reset();

  // Destroyed while running, with its refresh and watch armed and a read in flight.
  recorder c_rec;
  auto c = make(ttl_of(short_ttl()));
  c->start(make_self(cluster_, 3), c_rec.view_handler(), c_rec.health_handler());
  ASSERT_TRUE(run_until(io, [&] { return c_rec.healthy() && !c_rec.views.empty(); }));
  int c_reads = 0;
  c->read([&](std::error_code, std::vector<host_record>) { ++c_reads; });
  const auto c_views = c_rec.views.size();
  c.reset();

  // A change c would have been told of, and time for a refresh or two.
  auto d = join(4, ttl_of(long_ttl));
  ASSERT_TRUE(run_until(io, [&] { return d->rec.healthy(); }));
  run_for(io, short_ttl());
  EXPECT_EQ(b_calls, 0) << "no callback after destruction";
  EXPECT_EQ(c_reads, 0) << "no read completion after destruction";
  EXPECT_EQ(c_rec.views.size(), c_views);
  EXPECT_EQ(c_rec.health.size(), 1u);
}

TEST_P(RegistryConformance, HandlersMayStopOrDestroyTheRegistry) {
  // Destroyed from inside its own on_view.
  std::unique_ptr<registry> a = make(ttl_of(long_ttl));
  int a_views = 0;
  a->start(make_self(cluster_, 1),
           [&](const std::vector<host_record>&) {
             ++a_views;
             a.reset();
           },
           {});
  ASSERT_TRUE(run_until(io, [&] { return a == nullptr; }));

  // Stopped from inside its own on_health.
  auto b = make(ttl_of(long_ttl));
  const auto self_b = make_self(cluster_, 2);
  bool b_stopped = false;
  b->start(self_b, {},
           [&](std::error_code, const std::string&) { b->stop([&] { b_stopped = true; }); });
  ASSERT_TRUE(run_until(io, [&] { return b_stopped; }));
  EXPECT_FALSE(ids_of(read_store().rows).count(self_b.id)) << "stopped from on_health: row gone";
  run_for(io, 300ms);
  EXPECT_EQ(a_views, 1);
}

TEST_P(RegistryConformance, RowOfARegistryDestroyedWithoutStopExpires) {
  // Every host of a cluster runs with the same options. Nothing tells the others that b died:
  // they learn it from the store's expiry event or, at the latest, from their next refresh.
  const auto ttl = short_ttl();
  auto a = join(1, ttl_of(ttl));
  auto b = join(2, ttl_of(ttl));
  ASSERT_TRUE(run_until(io, [&] {
    return a->rec.sees_exactly({a->self.id, b->self.id}) && b->rec.healthy();
  }));

  const auto b_id = b->self.id;
  const auto views_b = b->rec.views.size();
  const auto crashed = clock_type::now();
  b->reg.reset();  // a crash: no stop(), the row stays until it expires
  ASSERT_TRUE(run_until(
      io, [&] { return a->rec.sees_exactly({a->self.id}); }, ttl + deadline))
      << "the dead row leaves a's view";
  const auto seen_after = std::chrono::duration_cast<ms>(clock_type::now() - crashed);
  const auto bound = ttl + ttl / 3 + traits(kind_).expiry_slack;
  EXPECT_LT(seen_after, bound) << "expired within its TTL, a refresh and slack";
  std::cout << "[ info     ] " << name() << ": dead row left the view after " << seen_after.count()
            << " ms (ttl " << ttl.count() << " ms, bound " << bound.count() << " ms)\n";
  EXPECT_FALSE(ids_of(read_store().rows).count(b_id));
  EXPECT_EQ(b->rec.views.size(), views_b) << "no callback after destruction";
  EXPECT_EQ(a->rec.errors(), 0u) << "another host's death is no store failure";
}

// When the store reports expiries (file: the rows' own expiry times; etcd: the watch sees the
// lease's DELETE; Redis: only when its keyspace notifications are on, hence a server of its own
// here), a dead row leaves the view within its own TTL, however rarely the observer refreshes.
TEST_P(RegistryConformance, ExpiryEventsRemoveADeadRowWithinItsTtl) {
  std::string store;
  std::unique_ptr<test::redis_server> notifying;
  if (kind_ == backend::redis) {
    notifying = std::make_unique<test::redis_server>(
        std::vector<std::string>{"--notify-keyspace-events", "Ex"});
    store = notifying->url();
  }
  const auto ttl = short_ttl();
  auto a = join(1, ttl_of(30s), store);  // refreshes (and rescans) every 10 s only
  auto b = join(2, ttl_of(ttl), store);
  ASSERT_TRUE(run_until(io, [&] {
    return a->rec.sees_exactly({a->self.id, b->self.id}) && b->rec.healthy();
  }));

  const auto crashed = clock_type::now();
  b->reg.reset();
  ASSERT_TRUE(run_until(
      io, [&] { return a->rec.sees_exactly({a->self.id}); }, ttl + deadline))
      << "the dead row leaves a's view";
  const auto seen_after = std::chrono::duration_cast<ms>(clock_type::now() - crashed);
  EXPECT_LT(seen_after, ttl + traits(kind_).expiry_slack)
      << "seen through the store's expiry event, not a's next rescan (10 s)";
  std::cout << "[ info     ] " << name() << ": expiry event after " << seen_after.count()
            << " ms (ttl " << ttl.count() << " ms)\n";
}

// ---- concurrency --------------------------------------------------------------------------------

// Hosts that register at the same instant, each on its own thread and io_context as separate
// masters would: every one of them appears in every view.
TEST_P(RegistryConformance, SimultaneousRegistrationsAllAppearEverywhere) {
  constexpr int n = 4;
  struct threaded {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::unique_ptr<registry> reg;
    host_record self;
    std::mutex mutex;
    std::set<host_id> last;
    bool healthy = false;
    std::thread thread;
  };
  std::vector<std::unique_ptr<threaded>> hosts;
  std::set<host_id> all;
  for (int i = 0; i < n; ++i) {
    auto h = std::make_unique<threaded>();
    h->self = make_self(cluster_, i);
    h->reg = make_registry(h->io.get_executor(), url(), cluster_, ttl_of(long_ttl));
    all.insert(h->self.id);
    hosts.push_back(std::move(h));
  }
  std::latch start_line(n);
  for (auto& h : hosts) {
    asio::post(h->io, [&start_line, h = h.get()] {
      start_line.arrive_and_wait();
      h->reg->start(
          h->self,
          [h](const std::vector<host_record>& view) {
            std::lock_guard lock(h->mutex);
            h->last = ids_of(view);
          },
          [h](std::error_code ec, const std::string&) {
            std::lock_guard lock(h->mutex);
            h->healthy = !ec;
          });
    });
    h->thread = std::thread([h = h.get()] { h->io.run(); });
  }

  const bool converged = test::eventually(deadline, [&] {
    return std::all_of(hosts.begin(), hosts.end(), [&](auto& h) {
      std::lock_guard lock(h->mutex);
      return h->healthy && h->last == all;
    });
  });
  for (auto& h : hosts) {
    std::lock_guard lock(h->mutex);
    EXPECT_TRUE(h->healthy);
    EXPECT_EQ(h->last.size(), all.size()) << "host " << h->self.hostname << " sees everybody";
  }
  EXPECT_TRUE(converged);
  EXPECT_EQ(ids_of(read_store().rows), all);

  // Each registry is stopped and destroyed on its own thread, where it lives.
  std::atomic<int> stopped = 0;
  for (auto& h : hosts) {
    asio::post(h->io, [&stopped, h = h.get()] {
      h->reg->stop([&stopped, h] {
        asio::post(h->io, [&stopped, h] {
          h->reg.reset();
          ++stopped;
        });
      });
    });
  }
  EXPECT_TRUE(test::eventually(deadline, [&] { return stopped == n; }));
  for (auto& h : hosts) {
    h->work.reset();
    if (stopped != n) h->io.stop();
    h->thread.join();
  }
  EXPECT_TRUE(read_store().rows.empty());
}

// ---- remove_stale -------------------------------------------------------------------------------

TEST_P(RegistryConformance, RemoveStaleIsACompareAndSwapAndALiveOwnerComesBack) {
  auto a = join(1, ttl_of(long_ttl));
  auto b = join(2, ttl_of(long_ttl));
  auto c = join(3, ttl_of(long_ttl, 1s));  // writes its row again within a second at most
  const std::set<host_id> three{a->self.id, b->self.id, c->self.id};
  ASSERT_TRUE(run_until(io, [&] { return a->rec.sees_exactly(three) && c->rec.healthy(); }));

  // The case remove_stale exists for: b crashed, its row lingers for its TTL (15 s), and a's
  // handshake at that address met another host. Nobody re-creates b's row, so a wrong removal
  // would stay visible.
  b->reg.reset();
  const auto views_a = a->rec.views.size();
  a->reg->remove_stale(b->self.id, "127.0.0.1:9");           // the right id at another address
  a->reg->remove_stale(host_id::random(), b->self.address);  // another id at the right address
  run_for(io, 1s);  // no completion to wait for: the claim is that nothing happens
  EXPECT_EQ(a->rec.views.size(), views_a) << "a mismatching remove_stale changes nothing";
  EXPECT_EQ(ids_of(read_store().rows), three);

  a->reg->remove_stale(b->self.id, b->self.address);
  const auto removed = clock_type::now();
  ASSERT_TRUE(run_until(io, [&] {
    return a->rec.sees_exactly({a->self.id, c->self.id});
  })) << "the row naming that id at that address is removed";
  EXPECT_LT(clock_type::now() - removed, notice) << "removed, not expired (TTL 15 s)";
  EXPECT_EQ(ids_of(read_store().rows), (std::set<host_id>{a->self.id, c->self.id}));

  // A live host's row removed by mistake: its owner writes it again (at once or by its next
  // refresh), and it stays in everyone's view.
  a->reg->remove_stale(c->self.id, c->self.address);
  EXPECT_TRUE(store_holds({a->self.id, c->self.id}));
  ASSERT_TRUE(run_until(io, [&] {
    return a->rec.sees_exactly({a->self.id, c->self.id}) &&
           c->rec.sees_exactly({a->self.id, c->self.id});
  }));
  EXPECT_TRUE(c->rec.healthy()) << "having its row removed is not a store failure";
}

// ---- read ---------------------------------------------------------------------------------------

TEST_P(RegistryConformance, ReadReturnsTheLiveRowsWithoutRegistering) {
  auto reader = make(ttl_of(long_ttl));
  read_result empty;
  reader->read([&](std::error_code ec, std::vector<host_record> rows) {
    empty.ec = ec;
    empty.rows = std::move(rows);
  });
  EXPECT_FALSE(empty.done()) << "the completion is posted, never run inline";
  ASSERT_TRUE(run_until(io, [&] { return empty.done(); }));
  EXPECT_FALSE(*empty.ec) << "an empty cluster is no error: " << empty.ec->message();
  EXPECT_TRUE(empty.rows.empty());

  auto a = join(1, ttl_of(long_ttl));
  auto b = join(2, ttl_of(long_ttl));
  ASSERT_TRUE(run_until(io, [&] { return a->rec.sees_exactly({a->self.id, b->self.id}); }));
  const auto views_a = a->rec.views.size();
  const auto full = read_rows(*reader);
  ASSERT_TRUE(full.done());
  EXPECT_FALSE(*full.ec);
  EXPECT_EQ(ids_of(full.rows), (std::set<host_id>{a->self.id, b->self.id}));
  const auto row =
      std::find_if(full.rows.begin(), full.rows.end(), [&](auto& r) { return r.id == b->self.id; });
  ASSERT_NE(row, full.rows.end());
  EXPECT_EQ(row->address, b->self.address);
  EXPECT_EQ(row->hostname, b->self.hostname);

  run_for(io, 300ms);
  EXPECT_EQ(a->rec.views.size(), views_a) << "reading registers nothing";
  EXPECT_FALSE(reader->describe().empty());
}

// ---- URLs ---------------------------------------------------------------------------------------

TEST_P(RegistryConformance, BadUrlsThrowInvalidArgumentNamingTheUrl) {
  std::vector<std::string> bad;
  std::string good;
  switch (kind_) {
    case backend::file:
      bad = {"file:", "file:/", "file:/tmp/..", "file://remote-host/x.registry"};
      good = file_url();
      break;
    case backend::etcd:
    case backend::redis: {
      const std::string scheme = name();
      bad = {scheme + "://", scheme + "://127.0.0.1:notaport", scheme + "://127.0.0.1:70000",
             scheme + "://:2379", scheme + ":127.0.0.1:2379"};
      good = scheme + "://127.0.0.1:" + std::to_string(test::free_loopback_port());
      break;
    }
  }
  for (const auto& url : bad) {
    try {
      make_registry(io.get_executor(), url, cluster_);
      ADD_FAILURE() << "accepted " << url;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string_view(e.what()).find(url), std::string_view::npos)
          << "the message names the URL: " << e.what();
    }
  }
  EXPECT_NO_THROW(make_registry(io.get_executor(), good, cluster_))
      << "a well-formed URL is accepted without contacting the store";
}

INSTANTIATE_TEST_SUITE_P(Backends, RegistryConformance,
                         ::testing::Values(backend::file, backend::etcd, backend::redis),
                         [](const ::testing::TestParamInfo<backend>& info) {
                           return std::string(traits(info.param).name);
                         });

}  // namespace
}  // namespace galaxies::registry::conformance
