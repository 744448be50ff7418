#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <unordered_set>
#include <vector>

#include "base/backoff.hpp"
#include "base/byte_buffer.hpp"
#include "base/endian.hpp"
#include "base/host_port.hpp"
#include "base/log_throttle.hpp"
#include "galaxies/error.hpp"
#include "galaxies/ids.hpp"

namespace galaxies {
namespace {

using namespace std::chrono_literals;

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

TEST(Slot, ComparesHashesAndPrintsByHostThenIndex) {
  const auto h = host_id::parse("6ba7b810-9dad-41d1-80b4-00c04fd430c8").value();
  const auto g = host_id::parse("00000000-9dad-41d1-80b4-00c04fd430c8").value();
  EXPECT_EQ((slot{h, 3}), (slot{h, 3}));
  EXPECT_NE((slot{h, 3}), (slot{h, 4}));
  EXPECT_NE((slot{h, 3}), (slot{g, 3})) << "slot 3 of another host";
  EXPECT_LT((slot{g, 9}), (slot{h, 0})) << "ordered by host first";
  EXPECT_LT((slot{h, 1}), (slot{h, 2}));
  EXPECT_EQ((slot{h, 3}).to_string(), "6ba7b810-9dad-41d1-80b4-00c04fd430c8#3");

  std::unordered_set<slot> seen;
  for (std::uint32_t i = 0; i < 64; ++i) {
    seen.insert({h, i});
    seen.insert({g, i});
  }
  EXPECT_EQ(seen.size(), 128u);
  EXPECT_TRUE(seen.contains(slot{g, 17}));
  EXPECT_FALSE(seen.contains(slot{g, 64}));
  EXPECT_EQ(std::hash<slot>{}(slot{h, 5}), std::hash<slot>{}(slot{h, 5}));
  EXPECT_NE(std::hash<slot>{}(slot{h, 5}), std::hash<slot>{}(slot{h, 6}));
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

// ---- backoff ----

// Each delay must sit within ±25% of its base, and the base doubles from `initial` to the cap.
void expect_sequence(base::backoff& b, std::chrono::milliseconds initial,
                     std::chrono::milliseconds max, int steps) {
  auto base = initial;
  for (int i = 0; i < steps; ++i) {
    const auto delay = b.next();
    EXPECT_GE(delay, base - base / 4) << "step " << i << ", base " << base.count() << " ms";
    EXPECT_LE(delay, base + base / 4) << "step " << i << ", base " << base.count() << " ms";
    base = std::min(max, base * 2);
  }
}

TEST(Backoff, DoublesToTheCapWithBoundedJitter) {
  base::backoff b(50ms, 2000ms);
  expect_sequence(b, 50ms, 2000ms, 12);  // 50 .. 1600, then 2000 six times
  for (int i = 0; i < 100; ++i) EXPECT_LE(b.next(), 2500ms) << "never past the cap plus jitter";
}

TEST(Backoff, JitterVaries) {
  base::backoff b(1000ms, 1000ms);
  std::set<std::chrono::milliseconds> seen;
  for (int i = 0; i < 50; ++i) seen.insert(b.next());
  EXPECT_GE(seen.size(), 10u) << "the same delay every time is no jitter";
}

TEST(Backoff, ResetStartsAgainFromTheInitialDelay) {
  base::backoff b(100ms, 800ms);
  for (int i = 0; i < 10; ++i) b.next();
  b.reset();
  expect_sequence(b, 100ms, 800ms, 6);
}

TEST(Backoff, TinyDelaysStayPositive) {
  base::backoff b(1ms, 4ms);
  for (int i = 0; i < 20; ++i) {
    const auto delay = b.next();
    EXPECT_GE(delay, 1ms);
    EXPECT_LE(delay, 5ms);
  }
}

// The point of the jitter: masters that lose the same peer at the same moment (each with its own
// backoff, in its own process) must not redial in lockstep.
TEST(Backoff, IndependentInstancesDoNotRunInLockstep) {
  base::backoff first(500ms, 60000ms);
  base::backoff second(500ms, 60000ms);
  std::vector<std::chrono::milliseconds> a, b;
  for (int i = 0; i < 8; ++i) {
    a.push_back(first.next());
    b.push_back(second.next());
  }
  EXPECT_NE(a, b);
}

// The shape only; transport and the registry judge the address part (transport_misc_test).
TEST(HostPort, SplitsTheShapeRegistryAndCommandLineWrite) {
  const auto v4 = base::split_host_port("10.0.0.1:7100");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "10.0.0.1");
  EXPECT_EQ(v4->port, 7100);
  const auto v6 = base::split_host_port("[::1]:0");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1") << "without the brackets";
  EXPECT_EQ(v6->port, 0);
  EXPECT_EQ(base::split_host_port("a:65535")->port, 65535);
  for (const char* bad : {"", ":80", "10.0.0.1", "10.0.0.1:", "10.0.0.1:65536", "10.0.0.1:+1",
                          "10.0.0.1: 1", "::1:80", "[]:80", "[::1]80", "[::1:80", "h:8o"}) {
    EXPECT_FALSE(base::split_host_port(bad)) << '"' << bad << '"';
  }
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

TEST(ByteBuffer, ReallocatingKeepsExactlyTheUnreadRangeAtTheStart) {
  byte_buffer buffer(8);
  for (std::size_t i = 0; i < buffer.size(); ++i) buffer.data()[i] = std::byte(i + 1);
  buffer.reallocate(16, 3, 7);
  ASSERT_EQ(buffer.size(), 16u);
  EXPECT_EQ(std::vector<std::byte>(buffer.data(), buffer.data() + 4),
            (std::vector<std::byte>{std::byte(4), std::byte(5), std::byte(6), std::byte(7)}));
  buffer.reallocate(4, 0, 0);
  EXPECT_EQ(buffer.size(), 4u);
}

// Resident bytes of this process (/proc/self/statm's second field); 0 when unreadable.
std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// Its pages are touched only when written: zero-filled, each link's 64 KiB read buffer cost a
// master with 71 links 4.6 MiB of pages it never read into (bench/RESULTS.md, seventeenth
// session).
TEST(ByteBuffer, TouchesNoPageUntilWritten) {
  constexpr std::size_t size = std::size_t{64} << 20;
  const auto before = resident_bytes();
  ASSERT_GT(before, 0u);
  byte_buffer buffer(size);
  // As if the bytes were read here: else the compiler may drop a zero-fill as overwritten below.
  asm volatile("" : : "r"(buffer.data()) : "memory");
  const auto made = resident_bytes();
  std::memset(buffer.data(), 1, size);
  const volatile std::byte last = buffer.data()[size - 1];  // the writes are used
  (void)last;
  const auto written = resident_bytes();
  EXPECT_GT(written - made, size / 2) << "writing it touches its pages: the measure sees them";
  EXPECT_LT(made - before, size / 4) << "making it touched " << (made - before) << " bytes";
}

}  // namespace
}  // namespace galaxies::base
