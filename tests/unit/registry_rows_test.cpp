// Registry rows are hostile until validated: every field checked by the codec every backend
// shares, skipped rows logged escaped and at most once per row per interval, and no view larger
// than limits::max_registry_hosts, however many rows a store holds.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "base/limits.hpp"
#include "registry/file_registry.hpp"
#include "registry/file_store.hpp"
#include "registry/row_checks.hpp"
#include "registry/row_json.hpp"
#include "registry/skipped_rows.hpp"
#include "unit/file_registry_support.hpp"

namespace galaxies::registry {
namespace {

using namespace file_test;
using json = nlohmann::json;

json good_row() {
  return {{"id", host_id::random().to_string()},
          {"cluster", "alpha"},
          {"address", "10.0.0.1:7100"},
          {"unix", "/run/user/1000/galaxies/alpha-1.sock"},
          {"hostname", "box"},
          {"pid", 42}};
}

std::error_code check(const json& row) {
  host_record out;
  return parse_row(row, out, expiry_field::absent);
}

json with(json row, const char* key, json value) {
  row[key] = std::move(value);
  return row;
}

TEST(RowChecks, AGoodRowPasses) {
  EXPECT_FALSE(check(good_row()));
  EXPECT_FALSE(check(with(good_row(), "hostname", "b\xc3\xb6x.example"))) << "non-ASCII UTF-8";
  EXPECT_FALSE(check(with(good_row(), "address", "[::1]:80")));
  EXPECT_FALSE(check(with(good_row(), "address", "[fe80::1]:65535")));
  EXPECT_FALSE(check(with(good_row(), "unix", ""))) << "a host may have no socket";
  EXPECT_FALSE(check(with(good_row(), "hostname", std::string(limits::max_hostname, 'h'))));
  EXPECT_FALSE(check(with(good_row(), "unix", "/" + std::string(limits::max_unix_path - 1, 'u'))));
  EXPECT_FALSE(check(with(good_row(), "cluster", std::string(limits::max_cluster_name, 'c'))));
}

TEST(RowChecks, EachBadFieldHasItsReason) {
  struct bad_case {
    const char* field;
    json value;
    row_error expected;
  };
  const std::vector<bad_case> cases = {
      {"id", "nope", row_error::bad_id},
      {"id", "00000000-0000-0000-0000-000000000000", row_error::bad_id},
      {"id", 42, row_error::bad_id},
      {"cluster", "", row_error::bad_cluster},
      {"cluster", "a b", row_error::bad_cluster},
      {"cluster", "../x", row_error::bad_cluster},
      {"cluster", std::string(limits::max_cluster_name + 1, 'c'), row_error::bad_cluster},
      {"cluster", "caf\xc3\xa9", row_error::bad_cluster},
      {"address", "", row_error::bad_address},
      {"address", "host.example:80", row_error::bad_address},
      {"address", "10.0.0.1", row_error::bad_address},
      {"address", "10.0.0.1:65536", row_error::bad_address},
      {"address", "10.0.0.1:80\n", row_error::bad_address},
      {"address", "::1:80", row_error::bad_address},
      {"address", "\x1b[31m:1", row_error::bad_address},
      {"address", "1.2.3.4:" + std::string(60, '1'), row_error::bad_address},
      {"address", 7100, row_error::bad_address},
      {"unix", "/" + std::string(limits::max_unix_path, 'u'), row_error::bad_unix_path},
      {"unix", "/tmp/a\nb.sock", row_error::bad_unix_path},
      {"unix", std::string("/tmp/a\0b", 8), row_error::bad_unix_path},
      {"unix", "/tmp/\xff.sock", row_error::bad_unix_path},
      {"hostname", std::string(limits::max_hostname + 1, 'h'), row_error::bad_hostname},
      {"hostname", "box\x1b]0;owned\x07", row_error::bad_hostname},
      {"hostname", "evil\xe2\x80\xaexob", row_error::bad_hostname},
      {"hostname", "\xc0\xaf", row_error::bad_hostname},
      {"hostname", json::array(), row_error::bad_hostname},
      {"pid", -1, row_error::bad_pid},
      {"pid", 4294967296LL, row_error::bad_pid},
      {"pid", "1", row_error::bad_pid},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(check(with(good_row(), c.field, c.value)), c.expected)
        << c.field << " = " << c.value.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  auto no_cluster = good_row();
  no_cluster.erase("cluster");
  EXPECT_EQ(check(no_cluster), row_error::bad_cluster);
  EXPECT_EQ(check(json::array()), row_error::not_an_object);

  host_record out;
  EXPECT_EQ(parse_row(good_row(), out, expiry_field::required), row_error::bad_expiry);
  EXPECT_EQ(parse_row_text("{", out, expiry_field::absent), row_error::not_json);
  EXPECT_EQ(parse_row_text(R"({"id":"\udc80"})", out, expiry_field::absent), row_error::not_json)
      << "a lone surrogate escape";
  auto padded = good_row();
  padded["padding"] = std::string(limits::max_registry_row_size, ' ');
  EXPECT_EQ(parse_row_text(padded.dump(), out, expiry_field::absent), row_error::not_json)
      << "too large to be parsed at all";
  EXPECT_FALSE(parse_row_text(good_row().dump(), out, expiry_field::absent));
}

TEST(RowChecks, ReasonsReadWell) {
  EXPECT_NE(make_error_code(row_error::bad_address).message().find("ip:port"), std::string::npos);
  EXPECT_STREQ(make_error_code(row_error::bad_id).category().name(), "registry row");
}

// A row file as its owner would write it: the row's fields and the format version.
json row_file(json row) {
  row["format"] = file_store::format_version;
  return row;
}

// Writes `row` under the file name of its own id (or of `id`, when given).
void plant(const std::string& dir, const json& row, std::string name = {}) {
  if (name.empty()) name = row["id"].get<std::string>() + ".json";
  write_raw(dir + "/" + name, row_file(row).dump());
}

TEST_F(FileRegistry, SkippedRowFilesAreListedWithTheirReason) {
  std::filesystem::create_directory(path);
  auto bad_address = with(good_row(), "address", "nowhere:1");
  bad_address["expires_ms"] = 1;
  auto good = good_row();
  good["expires_ms"] = 1;
  auto bad_hostname = with(good_row(), "hostname", "a\nb");
  bad_hostname["expires_ms"] = 1;
  plant(path, bad_address);
  plant(path, good);
  plant(path, bad_hostname);
  const auto not_an_object = host_id::random().to_string() + ".json";
  write_raw(path + "/" + not_an_object, "17");
  const auto snap = file_store::load(path);
  EXPECT_FALSE(snap.error);
  ASSERT_EQ(snap.rows.size(), 1u);
  ASSERT_EQ(snap.skipped.size(), 3u);
  std::map<std::string, std::error_code> why;
  for (const auto& s : snap.skipped) why[s.key] = s.why;
  EXPECT_EQ(why[bad_address["id"].get<std::string>() + ".json"], row_error::bad_address);
  EXPECT_EQ(why[bad_hostname["id"].get<std::string>() + ".json"], row_error::bad_hostname);
  EXPECT_EQ(why[not_an_object], row_error::not_an_object);
}

TEST(SkippedRowsLog, OncePerRowPerIntervalEscapedAndBounded) {
  captured_log log;
  skipped_rows_log skipped("file:/x", 1000ms, 3);
  const auto t0 = skipped_rows_log::clock::now();
  const auto why = make_error_code(row_error::bad_hostname);
  EXPECT_TRUE(skipped.skipped("k1", why, t0));
  EXPECT_FALSE(skipped.skipped("k1", why, t0 + 10ms)) << "the same row again: quiet";
  EXPECT_TRUE(skipped.skipped("k1", why, t0 + 1001ms)) << "a new interval";
  EXPECT_TRUE(skipped.skipped("\x1b[2Jk2\n", why, t0 + 1002ms));
  EXPECT_TRUE(skipped.skipped("k3", why, t0 + 1003ms));
  // Three keys remembered, all recent: a fourth one is only counted and summed up.
  EXPECT_TRUE(skipped.skipped("k4", why, t0 + 1004ms)) << "one summary line";
  EXPECT_FALSE(skipped.skipped("k5", why, t0 + 1005ms)) << "no more until the interval passed";
  EXPECT_TRUE(skipped.skipped("k6", why, t0 + 2100ms)) << "old keys forgotten: room again";

  const auto text = log.text();
  EXPECT_EQ(log.count("'k1'"), 2u);
  EXPECT_NE(text.find("\\x1b[2Jk2\\x0a"), std::string::npos) << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "no raw escape reaches the log";
  EXPECT_NE(text.find("bad hostname"), std::string::npos);
  EXPECT_NE(text.find("1 more bad row"), std::string::npos) << text;
}

std::vector<host_record> rows_sorted(std::size_t n) {
  std::vector<host_record> rows(n);
  for (auto& row : rows) row = make_self("alpha", "10.0.0.1:1");
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.id < b.id; });
  return rows;
}

TEST(ViewBound, KeepsOurselvesAndTheFirstByIdAndSaysSoOnce) {
  captured_log log;
  view_bound bound(4);
  const auto all = rows_sorted(10);
  const auto self = all.back().id;  // the largest id: beyond the limit

  auto view = all;
  bound.apply(view, self, "file:/x");
  ASSERT_EQ(view.size(), 4u);
  EXPECT_EQ(view[0].id, all[0].id);
  EXPECT_EQ(view[2].id, all[2].id);
  EXPECT_EQ(view[3].id, self) << "ourselves, kept last, still in id order";
  view = all;
  bound.apply(view, all[1].id, "file:/x");
  EXPECT_EQ(view.size(), 4u);
  EXPECT_EQ(view[3].id, all[3].id) << "ourselves among the first: nothing moves";
  EXPECT_EQ(log.count("more than the limit"), 1u) << "said once while over the limit";

  view.assign(all.begin(), all.begin() + 3);
  bound.apply(view, self, "file:/x");
  EXPECT_EQ(view.size(), 3u);
  EXPECT_EQ(log.count("within the limit again"), 1u);
}

TEST_F(FileRegistry, HostileRowFilesAreSkippedAndLoggedOnceHoweverOftenRead) {
  captured_log log;
  std::filesystem::create_directory(path);
  const auto now = file_store::now_ms();
  auto live = [&](json row) {
    row["expires_ms"] = now + 60000;
    return row;
  };
  const auto good = live(good_row());
  const json hostile = json::array({
      live(with(good_row(), "address", "evil.example:1")),
      live(with(good_row(), "hostname", "\x1b]0;owned\x07")),
      live(with(good_row(), "unix", "/" + std::string(200, 'u'))),
      live(with(good_row(), "cluster", "alpha beta")),
  });
  for (const auto& row : hostile) plant(path, row);
  plant(path, good);

  // No refresh during the test: every read counted is of a hostile file.
  file_registry a(io.get_executor(), path, "alpha", no_refresh_within(std::chrono::minutes(2)));
  const auto self = make_self("alpha", "127.0.0.1:7001");
  view_log views;
  a.start(self, views.handler(), {});
  const auto good_id = *host_id::parse(good["id"].get<std::string>());
  ASSERT_TRUE(run_until(io, [&] { return views.size() == 2 && views.has(good_id); }));

  // Rewritten (by a hostile writer, again and again): read each time, said once.
  const auto read_before = a.row_files_read();
  for (int round = 0; round < 3; ++round) {
    for (const auto& row : hostile) plant(path, row);
    run_until(io, [&] { return a.row_files_read() >= read_before + 4 * (round + 1); });
  }
  EXPECT_GE(a.row_files_read(), read_before + 12) << "every rewrite was read";
  EXPECT_EQ(views.size(), 2u) << "ourselves and the good row only";

  const auto text = log.text();
  for (const auto& row : hostile) {
    EXPECT_EQ(log.count(row["id"].get<std::string>()), 1u) << "one line per bad row\n" << text;
  }
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "no raw escape reaches the log";
  const auto snap = file_store::load(path);
  EXPECT_EQ(snap.skipped.size(), hostile.size()) << "not ours to remove: they stay, skipped";
  EXPECT_EQ(snap.rows.size(), 2u);
}

TEST_F(FileRegistry, AStoreOfManyRowsGivesAViewOfAtMostTheLimit) {
  captured_log log;
  auto rows = rows_sorted(limits::max_registry_hosts + 100);
  for (const auto& row : rows) write_row(path, row, 60000);

  auto a = make("alpha", short_ttl(5000));
  const auto self = make_self("alpha", "127.0.0.1:7001");
  view_log views;
  a->start(self, views.handler(), {});
  ASSERT_TRUE(run_until(io, [&] { return !views.views.empty(); }));
  const auto& view = views.views.back();
  ASSERT_EQ(view.size(), limits::max_registry_hosts);
  EXPECT_TRUE(views.has(self.id));
  EXPECT_TRUE(
      std::is_sorted(view.begin(), view.end(), [](auto& x, auto& y) { return x.id < y.id; }));
  // Every other row kept is among the first by id.
  const auto last_kept = rows[limits::max_registry_hosts - 1].id;
  for (const auto& row : view) {
    if (row.id != self.id) {
      EXPECT_LE(row.id, last_kept);
    }
  }
  EXPECT_EQ(log.count("more than the limit"), 1u);
}

}  // namespace
}  // namespace galaxies::registry
