// The master's forwarding table: one route per node, and the bulk removal a closing host link
// needs (its nodes only, in a stable order so that every receiver sees the same leave order).
#include "router/route_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <map>
#include <set>

namespace galaxies::router {
namespace {

// The table only compares connection pointers; distinct addresses are all it needs.
alignas(std::max_align_t) std::byte connection_slots[3][64];
connection* const conn_1 = reinterpret_cast<connection*>(connection_slots[0]);
connection* const conn_2 = reinterpret_cast<connection*>(connection_slots[1]);
connection* const conn_3 = reinterpret_cast<connection*>(connection_slots[2]);

const host_id host_x(uuid({0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));
const host_id host_y(uuid({0xbb, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));

route via(connection* c, const host_id& host = host_x, std::uint32_t pid = 0, bool local = false) {
  return route{.via = c, .host = host, .pid = pid, .local = local};
}

TEST(RouteTable, AddFindRemove) {
  route_table table;
  const auto a = node_id::random();
  const auto b = node_id::random();
  EXPECT_EQ(table.find(a), nullptr);

  EXPECT_TRUE(table.add(a, via(conn_1, host_x, 42, true)));
  EXPECT_TRUE(table.add(b, via(conn_2, host_y, 7)));
  EXPECT_EQ(table.size(), 2u);

  const route* r = table.find(a);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->via, conn_1);
  EXPECT_EQ(r->host, host_x);
  EXPECT_EQ(r->pid, 42u);
  EXPECT_TRUE(r->local);

  const auto removed = table.remove(a);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(removed->via, conn_1);
  EXPECT_EQ(removed->pid, 42u);
  EXPECT_EQ(table.find(a), nullptr);
  EXPECT_FALSE(table.remove(a).has_value()) << "removed once";
  EXPECT_EQ(table.size(), 1u);
  EXPECT_NE(table.find(b), nullptr);
}

TEST(RouteTable, AddingAKnownNodeChangesNothing) {
  route_table table;
  const auto a = node_id::random();
  ASSERT_TRUE(table.add(a, via(conn_1, host_x, 1)));
  // A second nodes_up for the same node (a duplicate snapshot) must not re-point its route.
  EXPECT_FALSE(table.add(a, via(conn_2, host_y, 2)));
  const route* r = table.find(a);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->via, conn_1);
  EXPECT_EQ(r->host, host_x);
  EXPECT_EQ(r->pid, 1u);
  EXPECT_EQ(table.size(), 1u);
}

TEST(RouteTable, RemoveViaTakesOnlyThatConnectionsNodesSorted) {
  route_table table;
  std::map<connection*, std::set<node_id>> expected;
  connection* const conns[] = {conn_1, conn_2, conn_3};
  for (int i = 0; i < 90; ++i) {
    const auto node = node_id::random();
    connection* c = conns[i % 3];
    ASSERT_TRUE(table.add(node, via(c, host_x, static_cast<std::uint32_t>(i))));
    expected[c].insert(node);
  }

  const auto removed = table.remove_via(conn_2);
  ASSERT_EQ(removed.size(), expected[conn_2].size());
  EXPECT_TRUE(std::is_sorted(removed.begin(), removed.end(), [](const auto& x, const auto& y) {
    return x.first < y.first;
  })) << "a stable leave order";
  std::set<node_id> got;
  for (const auto& [node, r] : removed) {
    EXPECT_EQ(r.via, conn_2);
    EXPECT_EQ(table.find(node), nullptr);
    got.insert(node);
  }
  EXPECT_EQ(got, expected[conn_2]);

  EXPECT_EQ(table.size(), 60u);
  for (connection* c : {conn_1, conn_3})
    for (const auto& node : expected[c]) {
      const route* r = table.find(node);
      ASSERT_NE(r, nullptr);
      EXPECT_EQ(r->via, c);
    }
  EXPECT_TRUE(table.remove_via(conn_2).empty()) << "nothing left through that connection";
}

TEST(RouteTable, ForEachVisitsEveryRouteOnce) {
  route_table table;
  std::map<node_id, std::uint32_t> expected;
  for (std::uint32_t i = 0; i < 20; ++i) {
    const auto node = node_id::random();
    table.add(node, via(conn_1, host_x, i));
    expected[node] = i;
  }
  std::map<node_id, std::uint32_t> seen;
  table.for_each([&](const node_id& node, const route& r) {
    EXPECT_TRUE(seen.emplace(node, r.pid).second) << "visited twice";
  });
  EXPECT_EQ(seen, expected);
}

}  // namespace
}  // namespace galaxies::router
