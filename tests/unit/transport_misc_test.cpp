// The transport layer's small pieces: endpoint text as the registry and CLI write it, redial
// backoff, and the escaped sample that protocol-violation logs carry.
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "transport/backoff.hpp"
#include "transport/endpoint.hpp"
#include "transport/protocol_log.hpp"

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;

// ---- endpoint ----

TEST(Endpoint, ParsesIpv4) {
  const auto e = parse_endpoint("127.0.0.1:8080");
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->address().is_v4());
  EXPECT_EQ(e->address().to_string(), "127.0.0.1");
  EXPECT_EQ(e->port(), 8080);

  const auto edges = parse_endpoint("0.0.0.0:0");
  ASSERT_TRUE(edges.has_value());
  EXPECT_EQ(edges->port(), 0);
  const auto top = parse_endpoint("255.255.255.255:65535");
  ASSERT_TRUE(top.has_value());
  EXPECT_EQ(top->port(), 65535);
}

TEST(Endpoint, ParsesBracketedIpv6) {
  const auto e = parse_endpoint("[::1]:9000");
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->address().is_v6());
  EXPECT_TRUE(e->address().is_loopback());
  EXPECT_EQ(e->port(), 9000);

  const auto full = parse_endpoint("[2001:db8::42:1]:1");
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->address().to_string(), "2001:db8::42:1");
  EXPECT_EQ(full->port(), 1);
}

TEST(Endpoint, FormatsAndRoundTrips) {
  EXPECT_EQ(format_endpoint({asio::ip::make_address("10.1.2.3"), 4000}), "10.1.2.3:4000");
  EXPECT_EQ(format_endpoint({asio::ip::make_address("::1"), 4000}), "[::1]:4000");
  for (const char* text : {"127.0.0.1:1", "192.168.10.20:65535", "[::1]:80", "[2001:db8::1]:443",
                           "[::ffff:10.0.0.1]:7000", "0.0.0.0:0"}) {
    const auto e = parse_endpoint(text);
    ASSERT_TRUE(e.has_value()) << text;
    EXPECT_EQ(format_endpoint(*e), text);
  }
}

TEST(Endpoint, RejectsMalformedText) {
  for (const char* text : {
           "",
           "127.0.0.1",                       // no port
           "127.0.0.1:",                      // empty port
           ":8080",                           // no address
           "127.0.0.1:65536",                 // port out of range
           "127.0.0.1:4294967297",            // wraps a 32-bit port
           "127.0.0.1:99999999999999999999",  // overflows any integer
           "127.0.0.1:-1",                    // signed
           "127.0.0.1:+80",                   //
           "127.0.0.1:80x",                   // trailing junk
           "127.0.0.1:8 0",                   //
           " 127.0.0.1:80",                   // surrounding space
           "localhost:80",                    // names need a resolver
           "example.com:443",                 //
           "256.0.0.1:80",                    // not an address
           "1.2.3:80",                        //
           "::1:80",                          // IPv6 without brackets
           "2001:db8::1:443",                 //
           "[::1:80",                         // unbalanced brackets
           "::1]:80",                         //
           "[::1]",                           // bracketed, no port
           "[]:80",                           // empty brackets
           "[::1]80",                         // no colon after the bracket
       }) {
    EXPECT_FALSE(parse_endpoint(text).has_value()) << '"' << text << '"';
  }
}

// ---- backoff ----

// Each delay must sit within ±25% of its base, and the base doubles from `initial` to the cap.
void expect_sequence(backoff& b, std::chrono::milliseconds initial, std::chrono::milliseconds max,
                     int steps) {
  auto base = initial;
  for (int i = 0; i < steps; ++i) {
    const auto delay = b.next();
    EXPECT_GE(delay, base - base / 4) << "step " << i << ", base " << base.count() << " ms";
    EXPECT_LE(delay, base + base / 4) << "step " << i << ", base " << base.count() << " ms";
    base = std::min(max, base * 2);
  }
}

TEST(Backoff, DoublesToTheCapWithBoundedJitter) {
  backoff b(50ms, 2000ms);
  expect_sequence(b, 50ms, 2000ms, 12);  // 50 .. 1600, then 2000 six times
  for (int i = 0; i < 100; ++i) EXPECT_LE(b.next(), 2500ms) << "never past the cap plus jitter";
}

TEST(Backoff, JitterVaries) {
  backoff b(1000ms, 1000ms);
  std::set<std::chrono::milliseconds> seen;
  for (int i = 0; i < 50; ++i) seen.insert(b.next());
  EXPECT_GE(seen.size(), 10u) << "the same delay every time is no jitter";
}

TEST(Backoff, ResetStartsAgainFromTheInitialDelay) {
  backoff b(100ms, 800ms);
  for (int i = 0; i < 10; ++i) b.next();
  b.reset();
  expect_sequence(b, 100ms, 800ms, 6);
}

TEST(Backoff, TinyDelaysStayPositive) {
  backoff b(1ms, 4ms);
  for (int i = 0; i < 20; ++i) {
    const auto delay = b.next();
    EXPECT_GE(delay, 1ms);
    EXPECT_LE(delay, 5ms);
  }
}

// The point of the jitter: masters that lose the same peer at the same moment (each with its own
// backoff, in its own process) must not redial in lockstep.
TEST(Backoff, IndependentInstancesDoNotRunInLockstep) {
  backoff first(500ms, 60000ms);
  backoff second(500ms, 60000ms);
  std::vector<std::chrono::milliseconds> a, b;
  for (int i = 0; i < 8; ++i) {
    a.push_back(first.next());
    b.push_back(second.next());
  }
  EXPECT_NE(a, b);
}

// ---- escaped_sample ----

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

std::vector<std::byte> bytes_of(std::string_view text) {
  std::vector<std::byte> out;
  for (char c : text) out.push_back(static_cast<std::byte>(c));
  return out;
}

TEST(EscapedSample, PrintableTextPassesThrough) {
  EXPECT_EQ(escaped_sample(bytes_of("GET / HTTP/1.1")), "GET / HTTP/1.1");
  EXPECT_EQ(escaped_sample({}), "");
}

TEST(EscapedSample, EscapesControlBytesHighBytesAndBackslash) {
  EXPECT_EQ(escaped_sample(bytes_of({0x00, 0x0a, 0x0d, 0x1b, 0x7f, 0x80, 0xff, '\\', 'A'})),
            "\\x00\\x0a\\x0d\\x1b\\x7f\\x80\\xff\\x5cA");
  // Every output character is printable: nothing raw reaches a terminal or a log parser.
  std::vector<std::byte> all;
  for (int v = 0; v < 256; ++v) all.push_back(static_cast<std::byte>(v));
  for (char c : escaped_sample(all, all.size()))
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(static_cast<unsigned char>(c));
}

TEST(EscapedSample, TruncatesToTheLimitAndSaysSo) {
  const auto long_input = bytes_of(std::string(40, 'a'));
  EXPECT_EQ(escaped_sample(long_input), std::string(32, 'a') + "...");
  EXPECT_EQ(escaped_sample(bytes_of(std::string(32, 'b'))), std::string(32, 'b'))
      << "exactly the limit is not truncated";
  EXPECT_EQ(escaped_sample(bytes_of("abcdef"), 4), "abcd...");
  // The limit counts input bytes, so the output stays bounded however hostile the bytes.
  const std::vector<std::byte> hostile(1 << 20, std::byte{0xff});
  EXPECT_EQ(escaped_sample(hostile).size(), 32u * 4 + 3);
}

}  // namespace
}  // namespace galaxies::transport
