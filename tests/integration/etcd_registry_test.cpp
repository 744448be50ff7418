// The etcd registry's behaviour against a fake gateway on loopback (fake_etcd.hpp): registration,
// views that follow the watch and change only when the hosts do, every way the watch or the lease
// can break, an unreachable or misbehaving etcd (the last view stands, health is reported once,
// recovery re-reads everything), compare-and-swap removal, read, stop and destruction.
// The same backend against a real etcd is the conformance suite's business.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/limits.hpp"
#include "fake_etcd.hpp"
#include "host/registry_factory.hpp"
#include "registry/registry.hpp"
#include "registry/row_json.hpp"
#include "support/eventually.hpp"

namespace galaxies::registry {
namespace {

using namespace std::chrono_literals;
using galaxies::test::fake_etcd;
using host::make_registry;

constexpr auto deadline = 5s;
const std::string prefix = "galaxies/t/hosts/";

bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit = deadline) {
  return galaxies::test::run_until(io, done, limit);
}

void run_for(asio::io_context& io, std::chrono::milliseconds span) {
  galaxies::test::run_until(
      io, [] { return false; }, span);
}

host_record make_host(const std::string& address) {
  host_record r;
  r.id = host_id::random();
  r.cluster = "t";
  r.address = address;
  r.unix_path = "/tmp/galaxies-test-" + r.id.to_string() + ".sock";
  r.hostname = "testhost";
  r.pid = static_cast<std::uint32_t>(::getpid());
  return r;
}

std::string key_of(const host_record& r) {
  return prefix + r.id.to_string();
}
std::string value_of(const host_record& r) {
  return row_to_text(r, expiry_field::absent);
}

std::set<host_id> ids(const std::vector<host_record>& rows) {
  std::set<host_id> out;
  for (const auto& r : rows) out.insert(r.id);
  return out;
}

class EtcdRegistry : public ::testing::Test {
 protected:
  std::unique_ptr<registry> make(std::chrono::milliseconds ttl = 2000ms,
                                 std::chrono::milliseconds refresh = 100ms) {
    options opts;
    opts.ttl = ttl;
    opts.refresh = refresh;
    return make_registry(io.get_executor(), etcd.url(), "t", opts);
  }

  // Starts `reg` for `self`, recording what it reports.
  void start(registry& reg, const host_record& self) {
    reg.start(
        self, [this](const std::vector<host_record>& v) { views.push_back(v); },
        [this](std::error_code ec, const std::string& detail) { health.emplace_back(ec, detail); });
  }
  std::set<host_id> last_view() const {
    return views.empty() ? std::set<host_id>{} : ids(views.back());
  }
  std::int64_t lease_of(const host_record& r) const {
    const auto it = etcd.keys().find(key_of(r));
    return it == etcd.keys().end() ? 0 : it->second.lease;
  }

  asio::io_context io;
  fake_etcd etcd{io};
  host_record self = make_host("127.0.0.1:1001");
  host_record other = make_host("127.0.0.1:1002");
  std::vector<std::vector<host_record>> views;
  std::vector<std::pair<std::error_code, std::string>> health;
};

TEST_F(EtcdRegistry, RegistersWithALeaseAndReportsTheFirstView) {
  etcd.put(key_of(other), value_of(other));
  etcd.put(prefix + "not-a-uuid", value_of(make_host("127.0.0.1:9")));  // key and row disagree
  etcd.put(prefix + make_host("x").id.to_string(), "{garbage");
  auto reg = make();
  start(*reg, self);
  EXPECT_TRUE(views.empty() && health.empty());  // nothing from inside start()
  ASSERT_TRUE(run_until(io, [&] { return !views.empty() && !health.empty(); }));
  EXPECT_FALSE(health[0].first) << health[0].second;
  EXPECT_EQ(last_view(), (std::set<host_id>{self.id, other.id}));
  EXPECT_NE(lease_of(self), 0);
  EXPECT_EQ(etcd.keys().at(key_of(self)).value, value_of(self));  // no expires_ms in etcd
  EXPECT_EQ(etcd.last_granted_ttl(), 2);
  EXPECT_EQ(etcd.calls("/v3/kv/range"), 1u);
  EXPECT_TRUE(run_until(io, [&] { return etcd.open_watches() == 1; }));
  // Keepalives follow; nothing else changes.
  run_for(io, 500ms);
  EXPECT_GE(etcd.calls("/v3/lease/keepalive"), 2u);
  EXPECT_EQ(views.size(), 1u);
  EXPECT_EQ(health.size(), 1u);
}

TEST_F(EtcdRegistry, TtlIsWholeSecondsAndAtLeastTwo) {
  for (const auto& [ttl, expected] :
       std::vector<std::pair<std::chrono::milliseconds, std::int64_t>>{
           {200ms, 2}, {1000ms, 2}, {2000ms, 2}, {2001ms, 3}, {10000ms, 10}}) {
    const auto grants = etcd.calls("/v3/lease/grant");
    auto reg = make(ttl, 0ms);
    start(*reg, make_host("127.0.0.1:1"));
    ASSERT_TRUE(run_until(io, [&] { return etcd.calls("/v3/lease/grant") > grants; }));
    EXPECT_EQ(etcd.last_granted_ttl(), expected) << ttl.count();
  }
}

TEST_F(EtcdRegistry, WatchEventsChangeTheViewOnlyWhenHostsChange) {
  auto reg = make();
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 1 && etcd.open_watches() == 1; }));
  etcd.put(key_of(other), value_of(other));
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 2; }));
  EXPECT_EQ(last_view(), (std::set<host_id>{self.id, other.id}));

  auto same = other;
  same.pid = 4242;  // neither id, address nor unix path: no change
  etcd.put(key_of(other), value_of(same));
  run_for(io, 200ms);
  EXPECT_EQ(views.size(), 2u);

  auto moved = other;
  moved.address = "127.0.0.1:2002";
  etcd.put(key_of(other), value_of(moved));
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 3; }));
  EXPECT_EQ(views.back().size(), 2u);

  etcd.remove(key_of(other));
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 4; }));
  EXPECT_EQ(last_view(), std::set<host_id>{self.id});
}

TEST_F(EtcdRegistry, HostileRowsAreSkippedOnceAndEscaped) {
  std::ostringstream log;
  // Restored however the test ends, after the registry (declared later) is gone.
  struct restore_logger {
    std::shared_ptr<spdlog::logger> saved = spdlog::default_logger();
    ~restore_logger() { spdlog::set_default_logger(saved); }
  } const restore;
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "captured", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  auto hostile = make_host("127.0.0.1:1003");
  hostile.hostname = "\x1b]0;owned\x07";
  auto too_large = make_host("127.0.0.1:1004");
  too_large.unix_path = std::string(5000, 'u');
  etcd.put(key_of(hostile), value_of(hostile));
  etcd.put(key_of(too_large), value_of(too_large));
  etcd.put(prefix + "\x1b[2J" + host_id::random().to_string(), value_of(other));
  auto reg = make();
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 1 && etcd.open_watches() == 1; }));
  EXPECT_EQ(last_view(), std::set<host_id>{self.id});
  etcd.put(key_of(hostile), value_of(hostile));  // the same bad row again, through the watch
  etcd.put(key_of(other), value_of(other));
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 2; }));
  reg.reset();  // the registry logs from a thread of its own: it has finished once destroyed

  const auto text = log.str();
  const auto count = [&](const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(hostile.id.to_string()), 1u) << "once per row per interval\n" << text;
  EXPECT_EQ(count(too_large.id.to_string()), 1u) << text;
  EXPECT_EQ(count("\\x1b[2J"), 1u) << "the foreign key, escaped\n" << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "no raw escape reaches the log";
}

TEST_F(EtcdRegistry, AViewHoldsAtMostTheLimitOfHosts) {
  std::vector<host_record> many;
  for (std::size_t i = 0; i < limits::max_registry_hosts + 20; ++i) {
    many.push_back(make_host("10.0.0.1:" + std::to_string(2000 + i)));
    etcd.put(key_of(many.back()), value_of(many.back()));
  }
  std::sort(many.begin(), many.end(), [](auto& a, auto& b) { return a.id < b.id; });
  auto reg = make();
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 1 && etcd.open_watches() == 1; }));
  EXPECT_EQ(views.back().size(), limits::max_registry_hosts);
  EXPECT_TRUE(last_view().contains(self.id));
  EXPECT_TRUE(last_view().contains(many.front().id)) << "the first by id are kept";
  EXPECT_FALSE(last_view().contains(many.back().id));

  // More through the watch: still bounded, and still the first by id.
  for (int i = 0; i < 20; ++i) {
    const auto extra = make_host("10.0.0.2:" + std::to_string(3000 + i));
    etcd.put(key_of(extra), value_of(extra));
  }
  run_for(io, 300ms);
  EXPECT_EQ(views.back().size(), limits::max_registry_hosts);
  EXPECT_TRUE(last_view().contains(self.id));
}

TEST_F(EtcdRegistry, ACanceledWatchRereadsEverything) {
  auto reg = make();
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 1 && etcd.open_watches() == 1; }));
  etcd.put_silently(key_of(other), value_of(other));  // missed: only a fresh range shows it
  etcd.cancel_watches(etcd.revision());
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 2; }));
  EXPECT_EQ(last_view(), (std::set<host_id>{self.id, other.id}));
  EXPECT_EQ(etcd.calls("/v3/kv/range"), 2u);
  EXPECT_TRUE(run_until(io, [&] { return etcd.calls("/v3/watch") == 2; }));  // watching again
  EXPECT_EQ(etcd.calls("/v3/lease/grant"), 1u);  // the lease was never in question
  EXPECT_EQ(health.size(), 1u);
}

TEST_F(EtcdRegistry, ACutWatchRereadsEverything) {
  etcd.put(key_of(other), value_of(other));
  auto reg = make();
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 1 && etcd.open_watches() == 1; }));
  etcd.remove_silently(key_of(other));
  etcd.cut_watches();
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 2; }));
  EXPECT_EQ(last_view(), std::set<host_id>{self.id});
  EXPECT_TRUE(run_until(io, [&] { return etcd.open_watches() == 1; }));
  EXPECT_EQ(health.size(), 1u);
}

TEST_F(EtcdRegistry, AKeepaliveWithoutTtlRegistersAgain) {
  auto reg = make();
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 1; }));
  const auto first = lease_of(self);
  etcd.forget_lease(first);
  ASSERT_TRUE(run_until(io, [&] { return lease_of(self) != first && lease_of(self) != 0; }));
  EXPECT_TRUE(etcd.has_lease(lease_of(self)));
  EXPECT_EQ(etcd.calls("/v3/lease/grant"), 2u);
  EXPECT_EQ(health.size(), 1u);  // reachable all along
  EXPECT_EQ(views.size(), 1u);
}

TEST_F(EtcdRegistry, AnExpiredLeaseDeletingOurRowRegistersAgain) {
  auto reg = make(2000ms, 1000ms);  // the watch, not the keepalive, notices first
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 1 && etcd.open_watches() == 1; }));
  const auto first = lease_of(self);
  etcd.expire_lease(first);
  ASSERT_TRUE(run_until(io, [&] { return lease_of(self) != 0 && lease_of(self) != first; }));
  EXPECT_EQ(etcd.keys().at(key_of(self)).value, value_of(self));
  EXPECT_EQ(health.size(), 1u);
  EXPECT_EQ(views.size(), 1u);  // we never left our own view
}

TEST_F(EtcdRegistry, UnreachableKeepsTheLastViewReportsOnceAndRecovers) {
  etcd.put(key_of(other), value_of(other));
  auto reg = make();
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 1 && etcd.open_watches() == 1; }));
  // Every connection is dropped without an answer: a transport failure, as when etcd is down.
  bool down = true;
  etcd.intercept = [&](const fake_etcd::exchange_ptr& x, const std::string&, const std::string&) {
    if (down) x->cut();
    return down;
  };
  etcd.cut_watches();
  ASSERT_TRUE(run_until(io, [&] { return health.size() == 2; }));
  EXPECT_TRUE(health[1].first);
  EXPECT_NE(health[1].second.find("etcd " + etcd.endpoint()), std::string::npos)
      << health[1].second;
  etcd.remove_silently(key_of(other));
  run_for(io, 1500ms);           // several retries
  EXPECT_EQ(health.size(), 2u);  // reported once
  EXPECT_EQ(views.size(), 1u);   // the last view stands
  EXPECT_GE(etcd.calls("/v3/lease/keepalive") + etcd.calls("/v3/kv/range"), 3u);

  down = false;
  ASSERT_TRUE(run_until(io, [&] { return health.size() == 3; }));
  EXPECT_FALSE(health[2].first);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 2; }));
  EXPECT_EQ(last_view(), std::set<host_id>{self.id});  // the fresh range, not the old view
  EXPECT_TRUE(run_until(io, [&] { return etcd.open_watches() == 1; }));
  EXPECT_NE(lease_of(self), 0);
}

TEST_F(EtcdRegistry, MalformedAndRefusedRepliesAreHealthErrorsThenRetried) {
  // The first range gets a reply of the wrong shape, the second a proxy's error page.
  int bad = 0;
  etcd.intercept = [&](const fake_etcd::exchange_ptr& x, const std::string& path,
                       const std::string&) {
    if (path != "/v3/kv/range" || bad == 2) return false;
    if (bad++ == 0) {
      x->reply(200, R"({"kvs":"surprise"})");
    } else {
      x->reply(503, "<html>busy</html>");
    }
    return true;
  };
  auto reg = make();
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return !health.empty(); }));
  EXPECT_TRUE(health[0].first);
  EXPECT_NE(health[0].second.find("malformed"), std::string::npos) << health[0].second;
  // The view follows the report that the store is healthy again (each is a handler of its own).
  ASSERT_TRUE(run_until(io, [&] { return health.size() == 2 && !views.empty(); }));
  EXPECT_FALSE(health[1].first);
  EXPECT_EQ(last_view(), std::set<host_id>{self.id});
}

TEST_F(EtcdRegistry, UnreachableAtStartIsReportedAtOnce) {
  {
    options opts;
    std::uint16_t port = 0;
    {
      asio::ip::tcp::acceptor closed(io, {asio::ip::make_address("127.0.0.1"), 0});
      port = closed.local_endpoint().port();
    }
    auto reg =
        make_registry(io.get_executor(), "etcd://127.0.0.1:" + std::to_string(port), "t", opts);
    start(*reg, self);
    ASSERT_TRUE(run_until(
        io, [&] { return !health.empty(); }, 2s));
    EXPECT_TRUE(health[0].first);
    EXPECT_EQ(health[0].second, "etcd 127.0.0.1:" + std::to_string(port) + ": Connection refused");
    run_for(io, 300ms);
    EXPECT_TRUE(views.empty());
    EXPECT_EQ(health.size(), 1u);
  }
}

TEST_F(EtcdRegistry, SeveralEndpointsMoveOnFromOneThatIsDown) {
  std::uint16_t port = 0;
  {
    asio::ip::tcp::acceptor closed(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = closed.local_endpoint().port();
  }
  auto reg = make_registry(io.get_executor(),
                           "etcd://127.0.0.1:" + std::to_string(port) + "," + etcd.endpoint(), "t",
                           options{});
  EXPECT_EQ(reg->describe(), "etcd://127.0.0.1:" + std::to_string(port) + "," + etcd.endpoint());
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return !health.empty(); }));
  EXPECT_FALSE(health[0].first) << health[0].second;
  EXPECT_NE(lease_of(self), 0);
}

TEST_F(EtcdRegistry, RemoveStaleIsACompareAndSwap) {
  etcd.put(key_of(other), value_of(other));
  auto reg = make();
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 1; }));

  reg->remove_stale(self.id, self.address);       // never our own row
  reg->remove_stale(other.id, "127.0.0.1:9999");  // it names another address now: kept
  run_for(io, 200ms);
  EXPECT_EQ(etcd.calls("/v3/kv/txn"), 0u);
  EXPECT_TRUE(etcd.keys().count(key_of(other)));

  // Rewritten between our read and our delete: the compare fails and the row stays.
  bool raced = false;
  etcd.intercept = [&](const fake_etcd::exchange_ptr&, const std::string& path,
                       const std::string&) {
    if (path == "/v3/kv/txn" && !raced) {
      raced = true;
      etcd.put(key_of(other), value_of(other));
    }
    return false;
  };
  reg->remove_stale(other.id, other.address);
  ASSERT_TRUE(run_until(io, [&] { return etcd.calls("/v3/kv/txn") == 1; }));
  run_for(io, 100ms);
  EXPECT_TRUE(etcd.keys().count(key_of(other)));

  reg->remove_stale(other.id, other.address);
  ASSERT_TRUE(run_until(io, [&] { return !etcd.keys().count(key_of(other)); }));
  ASSERT_TRUE(run_until(io, [&] { return last_view() == std::set<host_id>{self.id}; }));
}

TEST_F(EtcdRegistry, ReadListsValidRowsWithoutRegistering) {
  etcd.put(key_of(other), value_of(other));
  etcd.put(prefix + "bogus", "{}");
  etcd.put("galaxies/another/hosts/" + self.id.to_string(), value_of(self));
  auto reg = make();
  std::optional<std::vector<host_record>> rows;
  reg->read([&](std::error_code ec, std::vector<host_record> r) {
    EXPECT_FALSE(ec);
    rows = std::move(r);
  });
  EXPECT_FALSE(rows.has_value());
  ASSERT_TRUE(run_until(io, [&] { return rows.has_value(); }));
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].id, other.id);
  EXPECT_EQ((*rows)[0].address, other.address);
  EXPECT_EQ(etcd.calls("/v3/lease/grant"), 0u);
}

TEST_F(EtcdRegistry, StopRevokesTheLeaseAndTheRowWithIt) {
  auto reg = make();
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 1; }));
  bool done = false;
  reg->stop([&] { done = true; });
  EXPECT_FALSE(done);
  ASSERT_TRUE(run_until(io, [&] { return done; }));
  EXPECT_FALSE(etcd.keys().count(key_of(self)));
  EXPECT_EQ(etcd.calls("/v3/lease/revoke"), 1u);
  const auto keepalives = etcd.calls("/v3/lease/keepalive");
  run_for(io, 300ms);
  EXPECT_EQ(etcd.calls("/v3/lease/keepalive"), keepalives);
  EXPECT_EQ(etcd.open_watches(), 0u);
}

TEST_F(EtcdRegistry, StopWithoutStartCallsBack) {
  auto reg = make();
  bool done = false;
  reg->stop([&] { done = true; });
  EXPECT_FALSE(done);
  ASSERT_TRUE(run_until(io, [&] { return done; }));
  EXPECT_EQ(etcd.requests(), 0u);
}

TEST_F(EtcdRegistry, HandlersMayStopOrDestroyTheRegistry) {
  auto reg = make();
  bool stopped = false;
  reg->start(
      self, [&](const std::vector<host_record>&) { reg->stop([&] { stopped = true; }); },
      [&](std::error_code, const std::string&) {});
  ASSERT_TRUE(run_until(io, [&] { return stopped; }));

  auto other_reg = make();
  bool healthy = false;
  other_reg->start(
      other, [&](const std::vector<host_record>&) {},
      [&](std::error_code ec, const std::string&) {
        healthy = !ec;
        other_reg.reset();
      });
  ASSERT_TRUE(run_until(io, [&] { return healthy; }));
  run_for(io, 300ms);
  EXPECT_EQ(other_reg, nullptr);
}

TEST_F(EtcdRegistry, DestructionSilencesEverything) {
  auto reg = make();
  start(*reg, self);
  ASSERT_TRUE(run_until(io, [&] { return etcd.calls("/v3/lease/grant") == 1; }));
  int late = 0;
  reg->read([&](std::error_code, std::vector<host_record>) { ++late; });
  reg->stop([&] { ++late; });
  reg.reset();
  run_for(io, 500ms);
  EXPECT_EQ(late, 0);
  const auto calls = views.size() + health.size();
  run_for(io, 300ms);
  EXPECT_EQ(views.size() + health.size(), calls);
}

}  // namespace
}  // namespace galaxies::registry
