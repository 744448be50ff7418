#include <gtest/gtest.h>

#include <unordered_set>

#include "base/endian.hpp"
#include "base/log_throttle.hpp"
#include "galaxies/error.hpp"
#include "galaxies/ids.hpp"

namespace galaxies {
namespace {

TEST(Uuid, RoundTripsThroughCanonicalText) {
  const uuid id = uuid::random();
  const std::string text = id.to_string();
  ASSERT_EQ(text.size(), 36u);
  EXPECT_EQ(text[14], '4') << "version 4";
  auto parsed = uuid::parse(text);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, id);
}

TEST(Uuid, RejectsMalformedText) {
  EXPECT_FALSE(uuid::parse(""));
  EXPECT_FALSE(uuid::parse("not-a-uuid"));
  EXPECT_FALSE(uuid::parse("0123456789abcdef0123456789abcdef0123"));  // no dashes
  EXPECT_FALSE(uuid::parse("01234567-89ab-cdef-0123-456789abcdeg"));  // bad digit
  EXPECT_TRUE(uuid::parse("01234567-89AB-cdef-0123-456789abcdef"));   // case-insensitive
}

TEST(Uuid, RandomValuesDiffer) {
  std::unordered_set<uuid> seen;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(seen.insert(uuid::random()).second);
}

TEST(Uuid, NilIsAllZero) {
  EXPECT_TRUE(uuid{}.is_nil());
  EXPECT_FALSE(uuid::random().is_nil());
  EXPECT_EQ(uuid{}.to_string(), "00000000-0000-0000-0000-000000000000");
}

TEST(Errors, HaveStableNamesInTheirOwnCategory) {
  std::error_code ec = errc::node_left;
  EXPECT_EQ(ec.category().name(), std::string("galaxies"));
  EXPECT_EQ(ec.value(), 2);
  EXPECT_NE(ec.message().find("node_left"), std::string::npos);
  EXPECT_EQ(to_string(leave_reason::exited), "exited");
}

TEST(Endian, StoresLittleEndian) {
  std::byte buf[4];
  base::store_le<std::uint32_t>(buf, 0x01020304u);
  EXPECT_EQ(buf[0], std::byte{0x04});
  EXPECT_EQ(buf[3], std::byte{0x01});
  EXPECT_EQ(base::load_le<std::uint32_t>(buf), 0x01020304u);
}

}  // namespace
}  // namespace galaxies

namespace galaxies::base {
namespace {

TEST(LogThrottle, ABurstThenOneLinePerIntervalWithTheRestCounted) {
  using namespace std::chrono_literals;
  log_throttle throttle(1s, 3);
  const auto t0 = log_throttle::clock::now();
  std::uint64_t suppressed = 99;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(throttle.allow(t0, suppressed)) << i;
    EXPECT_EQ(suppressed, 0u);
  }
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(throttle.allow(t0 + 500ms, suppressed));
  ASSERT_TRUE(throttle.allow(t0 + 1001ms, suppressed));
  EXPECT_EQ(suppressed, 10u) << "the next line says how many were held back";
  EXPECT_FALSE(throttle.allow(t0 + 1500ms, suppressed));
  // A long quiet spell earns the burst back, never more.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(throttle.allow(t0 + 100s, suppressed)) << i;
  EXPECT_FALSE(throttle.allow(t0 + 100s, suppressed));
}

}  // namespace
}  // namespace galaxies::base
