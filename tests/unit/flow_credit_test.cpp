// Flow control without I/O (docs/protocol.md §4.1): what a sender may send, and when a receiver
// grants more, with the window growing for a blocked sender within the node's budget.
#include "worker/flow_credit.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "wire/credit.hpp"
#include "wire/frame.hpp"

namespace galaxies::detail {
namespace {

constexpr std::uint32_t window = 64 * 1024;
const node_id self = node_id::random();
const node_id peer = node_id::random();

TEST(SendCredit, AdmitsUpToTheWindowAndThenRefuses) {
  send_credit credit(window);
  std::size_t sent = 0;
  while (credit.admits(peer, 1000)) {
    EXPECT_EQ(credit.take(peer, 1000), 0);
    sent += 1000;
  }
  EXPECT_EQ(sent, 65000u);
  EXPECT_EQ(credit.available(peer), 536);
  credit.grant(peer, 32 * 1024, window);
  EXPECT_TRUE(credit.admits(peer, 1000));
}

TEST(SendCredit, TheFrameAfterABlockAsksForMore) {
  send_credit credit(window);
  credit.take(peer, window);
  EXPECT_FALSE(credit.admits(peer, 1));
  credit.mark_blocked(peer);
  credit.grant(peer, window, window);
  EXPECT_EQ(credit.take(peer, 100), wire::flag_blocked);
  EXPECT_EQ(credit.take(peer, 100), 0) << "only the first frame after the block carries it";
}

TEST(SendCredit, TryTakeIsAdmitsAndTakeInOne) {
  send_credit credit(window);
  ASSERT_EQ(credit.try_take(peer, window - 10), std::optional<std::uint8_t>(0));
  EXPECT_FALSE(credit.try_take(peer, 100)) << "10 bytes left, less than half the window";
  EXPECT_EQ(credit.available(peer), 10) << "a refusal debits nothing";
  credit.grant(peer, window, window);
  EXPECT_EQ(credit.try_take(peer, 100), std::optional<std::uint8_t>(wire::flag_blocked));
}

TEST(SendCredit, AFrameLargerThanTheWindowGoesAloneWhenHalfIsFree) {
  send_credit credit(window);
  EXPECT_TRUE(credit.admits(peer, 10 * window));
  credit.take(peer, 10 * window);
  EXPECT_FALSE(credit.admits(peer, 1)) << "in debt until the receiver has consumed it";
  credit.grant(peer, 10 * window, window);
  EXPECT_TRUE(credit.admits(peer, 10 * window));
}

TEST(SendCredit, GrantsNeverRaiseCreditAboveTheWindow) {
  send_credit credit(window);
  credit.grant(peer, 1u << 30, window);
  EXPECT_EQ(credit.available(peer), window);
  credit.refund(peer, 1u << 20);
  EXPECT_EQ(credit.available(peer), window);
  credit.grant(peer, 1u << 30, 2 * window);
  EXPECT_EQ(credit.available(peer), 2 * window) << "a grown window is the new ceiling";
}

TEST(SendCredit, AReceiverThatLeftTakesItsWindowAlong) {
  send_credit credit(window);
  credit.take(peer, window);
  credit.forget(peer);
  EXPECT_EQ(credit.available(peer), window) << "a node id is never reused; a fresh pair is fresh";
}

TEST(ReceiveCredit, GrantsEveryHalfWindowWhatWasConsumed) {
  receive_credit credit(window, 16 * window);
  std::uint64_t granted = 0;
  for (int i = 0; i < 64; ++i) {
    if (auto g = credit.consumed(self, peer, 1024, false)) {
      EXPECT_EQ(g->src, self);
      EXPECT_EQ(g->dst, peer);
      EXPECT_EQ(g->window, window);
      granted += g->grant;
    }
  }
  EXPECT_EQ(granted, 64u * 1024) << "two grants of half a window each";
}

TEST(ReceiveCredit, ABlockedSenderGetsWhatIsConsumedAtOnceAndADoubledWindow) {
  receive_credit credit(window, 16 * window);
  auto g = credit.consumed(self, peer, 100, true);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->window, 2 * window);
  EXPECT_EQ(g->grant, 100 + window) << "what it consumed, plus the window's growth";
  EXPECT_EQ(credit.windows(), 2u * window);
}

TEST(ReceiveCredit, WindowsGrowToAQuarterOfTheBudgetAtMost) {
  const std::size_t budget = 16 * window;
  receive_credit credit(window, budget);
  for (int i = 0; i < 20; ++i) credit.consumed(self, peer, 10, true);
  EXPECT_EQ(credit.window(peer), budget / 4);
}

TEST(ReceiveCredit, TheSumOfWindowsStaysWithinTheBudget) {
  const std::size_t budget = 8 * window;
  receive_credit credit(window, budget);
  std::vector<node_id> senders(6);
  for (auto& s : senders) s = node_id::random();
  // Every pair starts with the initial window, whatever the budget: growth is what it bounds.
  for (const auto& s : senders) credit.consumed(self, s, 10, false);
  for (int round = 0; round < 10; ++round)
    for (const auto& s : senders) credit.consumed(self, s, 10, true);
  EXPECT_LE(credit.windows(), budget);
  for (const auto& s : senders)
    EXPECT_GE(credit.window(s), window) << "nobody drops below the start";
  credit.forget(senders[0]);
  EXPECT_LE(credit.windows(), budget - window) << "a departed sender's window returns";
}

TEST(CreditFrame, RoundTripsAndRefusesAZeroWindow) {
  const wire::credit_grant g{self, peer, 12345, window};
  std::vector<std::byte> out;
  wire::append_credit(out, g);
  ASSERT_EQ(out.size(), wire::credit_frame_size);
  wire::frame_parser parser;
  const auto parsed = parser.parse(out);
  ASSERT_EQ(parsed.state, wire::parse_result::status::frame);
  wire::credit_grant back;
  ASSERT_FALSE(wire::decode_credit(parsed.frame, back));
  EXPECT_EQ(back, g);

  std::vector<std::byte> zero;
  wire::append_credit(zero, {self, peer, 1, 0});
  EXPECT_EQ(wire::decode_credit(parser.parse(zero).frame, back), wire::decode_error::bad_body);
  out.push_back(std::byte{0});
  out[0] = std::byte{static_cast<unsigned char>(wire::credit_frame_size - 4 + 1)};
  EXPECT_EQ(parser.parse(out).state, wire::parse_result::status::error) << "a longer body";
}

}  // namespace
}  // namespace galaxies::detail
