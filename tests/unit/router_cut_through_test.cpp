// Cut-through in a master (docs/architecture.md, "the borrowing rule"): a frame forwarded to a
// connection that is idle leaves from the buffer it was read into, and the connection's figures
// in the status document say so (bytes_queued, bytes_copied); a receiver whose socket is full
// gets copies, and everything in order.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "router_test_steps.hpp"
#include "support/router_harness.hpp"

namespace galaxies::test {
namespace {

// The status document's entry for local node `n`.
nlohmann::json node_status(router::router& r, const node_id& n) {
  const auto status = r.own_status();
  for (const auto& entry : status["nodes"])
    if (entry["node"] == n.to_string()) return entry;
  ADD_FAILURE() << "no status for node " << n.to_string();
  return {};
}

// `count` sends from `src` to `dst` numbered in their command ("m0", ...), each with `payload`.
frame_bytes numbered(const node_id& src, const node_id& dst, std::size_t count,
                     const std::string& payload, std::size_t first = 0) {
  frame_bytes out;
  for (std::size_t i = first; i < first + count; ++i) {
    const auto frame =
        message(wire::frame_type::send, src, dst, 0, 0, "m" + std::to_string(i), payload);
    out.insert(out.end(), frame.begin(), frame.end());
  }
  return out;
}

::testing::AssertionResult numbered_in_order(const fake_end& end, std::size_t count,
                                             const std::string& payload) {
  const auto got = messages(end);
  if (got.size() != count)
    return ::testing::AssertionFailure() << got.size() << " of " << count << " arrived";
  for (std::size_t i = 0; i < count; ++i) {
    if (got[i].command != "m" + std::to_string(i))
      return ::testing::AssertionFailure() << "message " << i << " is " << got[i].command;
    if (std::string(reinterpret_cast<const char*>(got[i].payload.data()), got[i].payload.size()) !=
        payload)
      return ::testing::AssertionFailure() << "message " << i << "'s payload is torn";
  }
  return ::testing::AssertionSuccess();
}

TEST(RouterCutThrough, FramesToAnIdleNodeLeaveFromTheReadBufferWithoutACopy) {
  router_harness h;
  const node_id x = node_named(0x11, 1), y = node_named(0x11, 2), z = node_named(0x41, 1);
  fake_end& from_x = attached_node(h, x);
  fake_end& to_y = attached_node(h, y);
  fake_end& host = linked_host(h, host_named(4), {z});
  // What the router itself queued for y so far (announcements) was copied: counted from here.
  const auto before = node_status(h.router(), y);
  const std::string payload(200, 'p');
  from_x.send(numbered(x, y, 10, payload));
  ASSERT_TRUE(h.run_until([&] { return messages(to_y).size() == 10; }));
  host.send(numbered(z, y, 10, payload, 10));  // from a host link's read buffer too
  ASSERT_TRUE(h.run_until([&] { return messages(to_y).size() == 20; }));

  EXPECT_TRUE(numbered_in_order(to_y, 20, payload));
  const auto status = node_status(h.router(), y);
  const auto frame_size = message(wire::frame_type::send, x, y, 0, 0, "m0", payload).size();
  // m0..m9 and m10..m19: the second ten have one more byte in their command each.
  const auto figure = [&](const char* key) {
    return status[key].get<std::uint64_t>() - before[key].get<std::uint64_t>();
  };
  EXPECT_EQ(figure("bytes_queued"), 20 * frame_size + 10);
  EXPECT_EQ(figure("bytes_copied"), 0u);
}

TEST(RouterCutThrough, ANodeWhoseSocketIsFullGetsCopiesAndEverythingInOrder) {
  router_harness h;
  const node_id x = node_named(0x11, 1), y = node_named(0x11, 2);
  fake_end& from_x = attached_node(h, x);
  fake_end& to_y = attached_node(h, y);
  to_y.stop_reading();
  const std::string payload(16 * 1024, 'q');
  const std::size_t count = 64;  // 1 MiB: more than a socket buffer holds
  from_x.send_later(numbered(x, y, count, payload));
  ASSERT_TRUE(h.run_until([&] { return from_x.unsent() == 0; }));
  to_y.resume_reading();
  ASSERT_TRUE(h.run_until([&] { return messages(to_y).size() == count; }, 10s));

  EXPECT_TRUE(numbered_in_order(to_y, count, payload));
  const auto status = node_status(h.router(), y);
  const auto queued = status["bytes_queued"].get<std::uint64_t>();
  const auto copied = status["bytes_copied"].get<std::uint64_t>();
  EXPECT_GT(copied, 0u) << "what the full socket could not take was queued";
  EXPECT_LE(copied, queued);
}

}  // namespace
}  // namespace galaxies::test
