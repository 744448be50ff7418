// The etcd gateway codec and the etcd:// URL: golden request bodies, replies as etcd 3.4's
// gateway really writes them (captured from one, with its quirks: numbers as strings, zero
// fields omitted, "result" wrappers, error bodies), and malformed replies, which must be errors
// and never exceptions or crashes.
#include "registry/etcd/etcd_codec.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "registry/etcd/etcd_endpoints.hpp"

namespace galaxies::registry::etcd {
namespace {

// --- base64 and key ranges -------------------------------------------------------------------

TEST(EtcdBase64, EncodesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("galaxies/x/hosts/a"), "Z2FsYXhpZXMveC9ob3N0cy9h");
  EXPECT_EQ(base64_encode(std::string("\xff\xfe\x00", 3)), "//4A");
}

TEST(EtcdBase64, RoundTripsEveryByteAndLength) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t n = 0; n <= all.size(); n += 7) {
    std::string out;
    ASSERT_TRUE(base64_decode(base64_encode(all.substr(0, n)), out)) << n;
    EXPECT_EQ(out, all.substr(0, n));
  }
}

TEST(EtcdBase64, AcceptsUrlSafeAndMissingPadding) {
  std::string out;
  ASSERT_TRUE(base64_decode("Zm8", out));
  EXPECT_EQ(out, "fo");
  ASSERT_TRUE(base64_decode("__4A", out));
  EXPECT_EQ(out, std::string("\xff\xfe\x00", 3));
}

TEST(EtcdBase64, RejectsGarbage) {
  std::string out;
  EXPECT_FALSE(base64_decode("Zm9v!", out));
  EXPECT_FALSE(base64_decode("Z", out));  // one character cannot carry a byte
  EXPECT_FALSE(base64_decode("Zm 9v", out));
  EXPECT_FALSE(base64_decode("Zm=9", out));  // padding in the middle
}

TEST(EtcdRange, PrefixEndIncrementsTheLastByte) {
  EXPECT_EQ(prefix_range_end("galaxies/x/hosts/"), "galaxies/x/hosts0");
  EXPECT_EQ(prefix_range_end("a"), "b");
  EXPECT_EQ(prefix_range_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_range_end(std::string("\xff\xff", 2)), std::string(1, '\0'));
  EXPECT_EQ(prefix_range_end(""), std::string(1, '\0'));
}

// --- request bodies (golden) -----------------------------------------------------------------

TEST(EtcdRequests, GoldenBodies) {
  EXPECT_EQ(lease_grant_request(5), R"({"TTL":"5"})");
  EXPECT_EQ(lease_keepalive_request(4111120266552990728), R"({"ID":"4111120266552990728"})");
  EXPECT_EQ(lease_revoke_request(7), R"({"ID":"7"})");
  EXPECT_EQ(put_request("galaxies/x/hosts/a", R"({"a":1})", 4111120266552990728),
            R"({"key":"Z2FsYXhpZXMveC9ob3N0cy9h","lease":"4111120266552990728",)"
            R"("value":"eyJhIjoxfQ=="})");
  EXPECT_EQ(range_key_request("galaxies/x/hosts/a"), R"({"key":"Z2FsYXhpZXMveC9ob3N0cy9h"})");
  EXPECT_EQ(range_prefix_request("galaxies/x/hosts/"),
            R"({"key":"Z2FsYXhpZXMveC9ob3N0cy8=","range_end":"Z2FsYXhpZXMveC9ob3N0czA="})");
  EXPECT_EQ(delete_if_unchanged_request("galaxies/x/hosts/a", 42),
            R"({"compare":[{"key":"Z2FsYXhpZXMveC9ob3N0cy9h","mod_revision":"42",)"
            R"("result":"EQUAL","target":"MOD"}],"success":[{"request_delete_range":)"
            R"({"key":"Z2FsYXhpZXMveC9ob3N0cy9h"}}]})");
  EXPECT_EQ(watch_prefix_request("galaxies/x/hosts/", 3),
            R"({"create_request":{"key":"Z2FsYXhpZXMveC9ob3N0cy8=",)"
            R"("range_end":"Z2FsYXhpZXMveC9ob3N0czA=","start_revision":"3"}})");
}

// --- replies, as etcd 3.4's gateway writes them ----------------------------------------------

constexpr const char* header =
    R"("header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709",)"
    R"("revision":"2","raft_term":"2"})";

std::string object(const std::string& fields) {
  return "{" + std::string(header) + (fields.empty() ? "" : "," + fields) + "}";
}

TEST(EtcdReplies, LeaseGrant) {
  lease_grant_reply r;
  std::string detail;
  ASSERT_FALSE(parse_lease_grant(object(R"("ID":"4111120266552990728","TTL":"5")"), r, detail));
  EXPECT_EQ(r.id, 4111120266552990728);
  EXPECT_EQ(r.ttl, 5);
  // Plain JSON numbers are accepted too.
  ASSERT_FALSE(parse_lease_grant(R"({"ID":12,"TTL":2})", r, detail));
  EXPECT_EQ(r.id, 12);
  EXPECT_EQ(r.ttl, 2);
}

TEST(EtcdReplies, KeepaliveIsWrappedInResultAndOmitsTtlForAnUnknownLease) {
  keepalive_reply r;
  std::string detail;
  ASSERT_FALSE(parse_keepalive(
      "{\"result\":" + object(R"("ID":"4111120266552990728","TTL":"5")") + "}\n", r, detail));
  EXPECT_EQ(r.id, 4111120266552990728);
  EXPECT_EQ(r.ttl, 5);
  ASSERT_FALSE(parse_keepalive("{\"result\":" + object(R"("ID":"12345")") + "}", r, detail));
  EXPECT_EQ(r.ttl, 0);  // the lease is gone
  ASSERT_FALSE(parse_keepalive(R"({"result":{"ID":"1","TTL":"-1"}})", r, detail));
  EXPECT_EQ(r.ttl, -1);
}

TEST(EtcdReplies, RangeWithRowsAndEmpty) {
  range_reply r;
  std::string detail;
  const auto body =
      object(R"("kvs":[{"key":"Z2FsYXhpZXMveC9ob3N0cy9h","create_revision":"2","mod_revision":"2",)"
             R"("version":"1","value":"eyJhIjoxfQ==","lease":"4111120266552990728"}],"count":"1")");
  ASSERT_FALSE(parse_range(body, r, detail)) << detail;
  EXPECT_EQ(r.revision, 2);
  ASSERT_EQ(r.kvs.size(), 1u);
  EXPECT_EQ(r.kvs[0].key, "galaxies/x/hosts/a");
  EXPECT_EQ(r.kvs[0].value, R"({"a":1})");
  EXPECT_EQ(r.kvs[0].mod_revision, 2);
  EXPECT_EQ(r.kvs[0].lease, 4111120266552990728);

  ASSERT_FALSE(parse_range(object(""), r, detail));  // no kvs, no count: nothing there
  EXPECT_EQ(r.revision, 2);
  EXPECT_TRUE(r.kvs.empty());
}

TEST(EtcdReplies, TxnSucceededOrOmittedFalse) {
  txn_reply r;
  std::string detail;
  ASSERT_FALSE(parse_txn(object(R"("succeeded":true,"responses":[{"response_delete_range":)"
                                R"({"header":{"revision":"4"},"deleted":"1"}}])"),
                         r, detail));
  EXPECT_TRUE(r.succeeded);
  ASSERT_FALSE(parse_txn(object(""), r, detail));
  EXPECT_FALSE(r.succeeded);
}

TEST(EtcdReplies, PutAndRevoke) {
  put_reply p;
  std::string detail;
  ASSERT_FALSE(parse_put(object(""), p, detail));
  EXPECT_EQ(p.revision, 2);
  EXPECT_FALSE(parse_revoke(object(""), detail));
}

TEST(EtcdReplies, WatchCreatedPutDeleteAndCanceled) {
  watch_reply w;
  std::string detail;
  ASSERT_FALSE(parse_watch("{\"result\":" + object(R"("created":true)") + "}", w, detail));
  EXPECT_TRUE(w.created);
  EXPECT_FALSE(w.canceled);
  EXPECT_TRUE(w.events.empty());

  ASSERT_FALSE(parse_watch(
      "{\"result\":" +
          object(
              R"("events":[{"kv":{"key":"Z2FsYXhpZXMveC9ob3N0cy9h","create_revision":"3",)"
              R"("mod_revision":"3","version":"1","value":"eyJjIjoxfQ==","lease":"7"}},)"
              R"({"type":"DELETE","kv":{"key":"Z2FsYXhpZXMveC9ob3N0cy9h","mod_revision":"4"}}])") +
          "}",
      w, detail))
      << detail;
  ASSERT_EQ(w.events.size(), 2u);
  EXPECT_EQ(w.events[0].type, watch_event::kind::put);  // PUT is omitted: the enum's zero
  EXPECT_EQ(w.events[0].kv.value, R"({"c":1})");
  EXPECT_EQ(w.events[1].type, watch_event::kind::del);
  EXPECT_EQ(w.events[1].kv.key, "galaxies/x/hosts/a");
  EXPECT_EQ(w.events[1].kv.mod_revision, 4);
  EXPECT_TRUE(w.events[1].kv.value.empty());

  ASSERT_FALSE(parse_watch(R"({"result":{"header":{"cluster_id":"1","raft_term":"2"},)"
                           R"("canceled":true,"compact_revision":"4"}})",
                           w, detail));
  EXPECT_TRUE(w.canceled);
  EXPECT_EQ(w.compact_revision, 4);
  EXPECT_EQ(w.revision, 0);  // no revision in that header
}

TEST(EtcdReplies, ErrorBodies) {
  std::string detail;
  const std::string lease_gone =
      R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested )"
      R"(lease not found","code":5})";
  EXPECT_EQ(parse_http_error(404, lease_gone, detail), errc::lease_not_found);
  EXPECT_EQ(detail, "etcdserver: requested lease not found");
  put_reply p;
  EXPECT_EQ(parse_put(lease_gone, p, detail), errc::lease_not_found);

  EXPECT_EQ(parse_http_error(400,
                             R"({"error":"invalid character 'n'","message":"invalid character )"
                             R"('n'","code":3})",
                             detail),
            errc::server_error);
  EXPECT_EQ(detail, "invalid character 'n'");

  // A streaming error, in grpc-gateway's other shape.
  watch_reply w;
  EXPECT_EQ(parse_watch(R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: )"
                        R"(no leader","http_status":"Service Unavailable"}})",
                        w, detail),
            errc::server_error);
  EXPECT_EQ(detail, "etcdserver: no leader");

  // Not etcd talking: the status and a bounded, printable sample.
  EXPECT_EQ(parse_http_error(404, "Not Found\n", detail), errc::malformed_reply);
  EXPECT_EQ(detail, "HTTP 404: Not Found");
  EXPECT_EQ(parse_http_error(502, std::string(1000, 'x') + "\x01", detail), errc::malformed_reply);
  EXPECT_LT(detail.size(), 200u);
}

TEST(EtcdReplies, MalformedRepliesAreErrors) {
  const std::vector<std::string> bad = {
      "",
      "not json",
      "{\"header\":",
      "[]",
      "42",
      R"({"result":[]})",
      R"({"header":[]})",
      R"({"header":{"revision":"x"}})",
      R"({"header":{"revision":"12a"}})",
      R"({"header":{"revision":""}})",
      R"({"header":{"revision":1.5}})",
      R"({"header":{"revision":"99999999999999999999"}})",
      R"({"header":{"revision":18446744073709551615}})",
      R"({"kvs":{}})",
      R"({"kvs":[1]})",
      R"({"kvs":[{"key":"!!!"}]})",
      R"({"kvs":[{"key":"YQ==","value":7}]})",
      R"({"kvs":[{"key":"YQ==","mod_revision":true}]})",
      R"({"succeeded":"yes"})",
      R"({"events":{}})",
      R"({"events":[{"type":"PUT"}]})",
      R"({"events":[{"type":"EXPLODE","kv":{"key":"YQ=="}}]})",
      R"({"events":[{"type":7,"kv":{"key":"YQ=="}}]})",
      R"({"created":"true"})",
      std::string(100000, '['),
      std::string("{\"kvs\":[{\"key\":\"\xff\xfe\"}]}"),
  };
  for (const auto& body : bad) {
    std::string detail;
    range_reply r;
    txn_reply t;
    watch_reply w;
    const auto range_ec = parse_range(body, r, detail);
    const auto txn_ec = parse_txn(body, t, detail);
    const auto watch_ec = parse_watch(body, w, detail);
    // Each body is malformed for at least the parser whose fields it damages, and no parser
    // throws or accepts a non-object.
    EXPECT_TRUE(range_ec || txn_ec || watch_ec) << body.substr(0, 80);
    if (range_ec) {
      EXPECT_FALSE(detail.empty());
    }
  }
  lease_grant_reply g;
  std::string detail;
  EXPECT_EQ(parse_lease_grant(object(""), g, detail), errc::malformed_reply);  // no lease
  EXPECT_EQ(parse_lease_grant(R"({"ID":"1","TTL":"x"})", g, detail), errc::malformed_reply);
  keepalive_reply k;
  EXPECT_EQ(parse_keepalive(R"({"result":{"TTL":{}}})", k, detail), errc::malformed_reply);
}

// --- the watch stream's lines ----------------------------------------------------------------

TEST(EtcdLines, SplitsAtEveryOffset) {
  const std::string stream = "{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":3}\n{\"partial\"";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    line_splitter lines;
    std::vector<std::string> got;
    std::string line;
    lines.feed(std::string_view(stream).substr(0, cut));
    while (lines.next(line)) got.push_back(line);
    lines.feed(std::string_view(stream).substr(cut));
    while (lines.next(line)) got.push_back(line);
    EXPECT_EQ(got, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"})) << cut;
  }
}

TEST(EtcdLines, ByteByByte) {
  const std::string stream = "first\nsecond\n";
  line_splitter lines;
  std::vector<std::string> got;
  std::string line;
  for (const char c : stream) {
    lines.feed(std::string_view(&c, 1));
    while (lines.next(line)) got.push_back(line);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"first", "second"}));
}

TEST(EtcdLines, AnOverlongLineStopsTheSplitter) {
  line_splitter lines(8);
  std::string line;
  lines.feed("short\n0123456789");
  ASSERT_TRUE(lines.next(line));
  EXPECT_EQ(line, "short");
  EXPECT_FALSE(lines.next(line));
  EXPECT_TRUE(lines.overflowed());
  lines.feed("\nmore\n");
  EXPECT_FALSE(lines.next(line));
}

// --- the URL ---------------------------------------------------------------------------------

TEST(EtcdUrl, ParsesOneOrSeveralEndpoints) {
  auto eps = parse_url("etcd://127.0.0.1:2379");
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps[0].host, "127.0.0.1");
  EXPECT_EQ(eps[0].port, 2379);
  EXPECT_EQ(eps[0].base_url(), "http://127.0.0.1:2379");

  eps = parse_url("etcd://etcd-1.example:1,[::1]:65535,localhost");
  ASSERT_EQ(eps.size(), 3u);
  EXPECT_EQ(eps[0].to_string(), "etcd-1.example:1");
  EXPECT_EQ(eps[1].host, "::1");
  EXPECT_EQ(eps[1].to_string(), "[::1]:65535");
  EXPECT_EQ(eps[2].to_string(), "localhost:2379");  // etcd's client port by default
  EXPECT_EQ(to_url(eps), "etcd://etcd-1.example:1,[::1]:65535,localhost:2379");
}

TEST(EtcdUrl, RejectsMalformedUrlsClearly) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"etcd://", "no host"},
      {"etcd://:2379", "no host"},
      {"etcd://h:", "bad port"},
      {"etcd://h:0", "bad port"},
      {"etcd://h:65536", "bad port"},
      {"etcd://h:12x", "bad port"},
      {"etcd://h:-1", "bad port"},
      {"etcd://h:2379/v3", "path"},
      {"etcd://h:2379/", "path"},
      {"etcd://h:2379?x=1", "query"},
      {"etcd://user:pw@h:2379", "user"},
      {"etcd://a:1,,b:2", "empty"},
      {"etcd://a:1,", "empty"},
      {"etcd://h h:1", "bad host"},
      {"etcd://[::1:2379", "unclosed"},
      {"etcd://[zz]:1", "IPv6"},
      {"etcd://[::1]x", "after ']'"},
      {"etcd://a:1,a:1", "twice"},
      {"http://a:1", "not an etcd URL"},
  };
  for (const auto& [url, why] : cases) {
    try {
      parse_url(url);
      ADD_FAILURE() << url << " was accepted";
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(why), std::string::npos) << url << ": " << message;
      EXPECT_NE(message.find("etcd://HOST:PORT"), std::string::npos) << message;
    }
  }
}

}  // namespace
}  // namespace galaxies::registry::etcd
