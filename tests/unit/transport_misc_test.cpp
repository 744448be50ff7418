// The transport layer's small pieces: endpoint text as the registry and CLI write it, who may use
// a master's Unix socket, and the escaped sample that protocol-violation logs carry.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "transport/endpoint.hpp"
#include "transport/local_peer.hpp"
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

// ---- local_peer ----

TEST(LocalPeer, OurOwnUidMayConnectAnotherMayNot) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  EXPECT_FALSE(refuse_local_peer(fds[0], ::geteuid())) << "the same uid";
  const uid_t other = ::geteuid() == 0 ? 4242 : ::geteuid() + 1;
  const auto refused = refuse_local_peer(fds[0], other);
  if (::geteuid() == 0) {
    EXPECT_FALSE(refused) << "root may always connect";
  } else {
    ASSERT_TRUE(refused);
    EXPECT_NE(refused->find("uid " + std::to_string(::geteuid())), std::string::npos) << *refused;
    EXPECT_NE(refused->find("pid " + std::to_string(::getpid())), std::string::npos) << *refused;
  }
  EXPECT_TRUE(refuse_local_peer(-1, ::geteuid())) << "no credentials, no entry";
  ::close(fds[0]);
  ::close(fds[1]);
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
