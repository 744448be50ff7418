// The pure parts of the Redis registry backend: URL parsing (with its error messages, which must
// never show the password), the key layout, the copy of what hiredis read from the server, and the
// parsing of SCAN and MGET replies into rows, skipping whatever is not a row. The backend against a
// real redis-server is covered by the registry conformance suite (integration).
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "registry/redis/redis_layout.hpp"
#include "registry/redis/redis_url.hpp"
#include "registry/row_json.hpp"

namespace galaxies::registry::redis {
namespace {

std::string parse_error(std::string_view url) {
  try {
    parse_url(url);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

TEST(RedisUrl, HostAndPort) {
  const auto t = parse_url("redis://127.0.0.1:6380");
  EXPECT_EQ(t.host, "127.0.0.1");
  EXPECT_EQ(t.port, 6380);
  EXPECT_TRUE(t.password.empty());
  EXPECT_FALSE(t.db.has_value());
  EXPECT_EQ(t.describe(), "redis://127.0.0.1:6380");
  EXPECT_EQ(t.endpoint(), "127.0.0.1:6380");
}

TEST(RedisUrl, DefaultPortAndEmptyPath) {
  const auto t = parse_url("redis://localhost/");
  EXPECT_EQ(t.host, "localhost");
  EXPECT_EQ(t.port, 6379);
  EXPECT_FALSE(t.db.has_value());
}

TEST(RedisUrl, PasswordAndDb) {
  const auto t = parse_url("redis://:s3cret@10.0.0.5:7000/3");
  EXPECT_EQ(t.password, "s3cret");
  EXPECT_TRUE(t.username.empty());
  ASSERT_TRUE(t.db.has_value());
  EXPECT_EQ(*t.db, 3);
  EXPECT_EQ(t.describe(), "redis://10.0.0.5:7000/3");  // never the password
}

TEST(RedisUrl, UserPercentEncodingAndAtInPassword) {
  const auto t = parse_url("redis://app:p%40ss%2Fw@rd@host:1/0");
  EXPECT_EQ(t.username, "app");
  EXPECT_EQ(t.password, "p@ss/w@rd");  // the last '@' ends the user info
  EXPECT_EQ(t.host, "host");
  EXPECT_EQ(*t.db, 0);
}

TEST(RedisUrl, Ipv6) {
  const auto t = parse_url("redis://[::1]:6379/1");
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.describe(), "redis://[::1]:6379/1");
}

TEST(RedisUrl, Rejections) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"redis://", "no host"},
      {"redis://:6379", "no host"},
      {"redis://:pw@", "no host"},
      {"redis://host:", "bad port"},
      {"redis://host:0", "bad port"},
      {"redis://host:65536", "bad port"},
      {"redis://host:12ab", "bad port"},
      {"redis://host:99999999999", "bad port"},
      {"redis://host:6379/x", "bad database"},
      {"redis://host:6379/-1", "bad database"},
      {"redis://host:6379/1/2", "bad database"},
      {"redis://host:6379/99999999999", "bad database"},
      {"redis://ho st:6379", "bad character"},
      {"redis://host:6379?db=1", "query"},
      {"redis://user@host:6379", "':'"},
      {"redis://:@host:6379", "empty password"},
      {"redis://:p%zz@host", "percent"},
      {"redis://[::1", "unclosed"},
      {"http://host", "not a redis:// URL"},
  };
  for (const auto& [url, why] : cases) {
    const auto message = parse_error(url);
    EXPECT_NE(message.find(why), std::string::npos) << url << " -> " << message;
    EXPECT_NE(message.find("redis://[:PASSWORD@]HOST:PORT[/DB]"), std::string::npos) << message;
  }
}

TEST(RedisUrl, ErrorsNeverShowThePassword) {
  const auto message = parse_error("redis://:topsecret@host:bad");
  EXPECT_NE(message.find("bad port"), std::string::npos);
  EXPECT_EQ(message.find("topsecret"), std::string::npos) << message;
  EXPECT_NE(message.find("***"), std::string::npos) << message;
}

TEST(RedisLayout, NamesOfKeysAndChannels) {
  const layout where("prod", 2);
  const auto id = *host_id::parse("0d5f7d9e-2a6b-4c1f-8e3a-5b6c7d8e9f01");
  EXPECT_EQ(where.key(id), "galaxies:prod:host:0d5f7d9e-2a6b-4c1f-8e3a-5b6c7d8e9f01");
  EXPECT_EQ(where.scan_pattern(), "galaxies:prod:host:*");
  EXPECT_EQ(where.hosts_channel(), "galaxies:prod:hosts");
  EXPECT_EQ(where.expired_channel(), "__keyevent@2__:expired");
  EXPECT_EQ(where.deleted_channel(), "__keyevent@2__:del");
  EXPECT_EQ(where.keyspace_pattern(), "__keyspace@2__:galaxies:prod:host:*");
  EXPECT_EQ(where.key_of_keyspace_channel("__keyspace@2__:" + where.key(id)), where.key(id));
  EXPECT_FALSE(where.key_of_keyspace_channel("__keyspace@0__:" + where.key(id)));
  EXPECT_FALSE(where.key_of_keyspace_channel(where.expired_channel()));
  EXPECT_EQ(where.id_of_key(where.key(id)), id);
  EXPECT_FALSE(where.id_of_key("galaxies:other:host:0d5f7d9e-2a6b-4c1f-8e3a-5b6c7d8e9f01"));
  EXPECT_FALSE(where.id_of_key("galaxies:prod:host:not-a-uuid"));
  EXPECT_FALSE(where.id_of_key("galaxies:prod:host:00000000-0000-0000-0000-000000000000"));
}

TEST(RedisLayout, Messages) {
  const auto id = host_id::random();
  EXPECT_EQ(host_of_message(join_message(id)), id);
  EXPECT_EQ(host_of_message(leave_message(id)), id);
  EXPECT_FALSE(host_of_message("hello " + id.to_string()));
  EXPECT_FALSE(host_of_message("join"));
  EXPECT_FALSE(host_of_message("join nonsense"));
}

reply string(std::string text) {
  reply r;
  r.type = reply::kind::string;
  r.text = std::move(text);
  return r;
}

reply array(std::vector<reply> elements) {
  reply r;
  r.type = reply::kind::array;
  r.elements = std::move(elements);
  return r;
}

using reader_ptr = std::unique_ptr<redisReader, decltype(&redisReaderFree)>;

// A reader as the connection sets one up.
reader_ptr make_reader() {
  reader_ptr reader(redisReaderCreate(), redisReaderFree);
  limit_reply_elements(*reader);
  return reader;
}

// The server's bytes as hiredis reads them, copied: what every handler of the backend gets.
std::vector<reply> read_replies(std::string_view bytes) {
  auto reader = make_reader();
  EXPECT_EQ(redisReaderFeed(reader.get(), bytes.data(), bytes.size()), REDIS_OK);
  std::vector<reply> out;
  for (;;) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader.get(), &raw) != REDIS_OK) {
      ADD_FAILURE() << "protocol error: " << reader->errstr;
      break;
    }
    if (raw == nullptr) break;
    out.push_back(copy_reply(*static_cast<const redisReply*>(raw)));
    freeReplyObject(raw);
  }
  return out;
}

TEST(RedisReply, CopiesWhatTheServerSent) {
  using namespace std::string_view_literals;  // the bytes hold a NUL
  const auto got = read_replies(
      "+OK\r\n-NOAUTH Authentication required.\r\n:-42\r\n$-1\r\n*-1\r\n"
      "$5\r\na\0b\r\n\r\n*2\r\n$2\r\n17\r\n*2\r\n$1\r\nk\r\n$-1\r\n"sv);
  ASSERT_EQ(got.size(), 7u);
  EXPECT_TRUE(got[0].is_status("OK"));
  EXPECT_EQ(got[1].type, reply::kind::error);
  EXPECT_EQ(got[1].text, "NOAUTH Authentication required.");
  EXPECT_EQ(got[2].type, reply::kind::integer);
  EXPECT_EQ(got[2].integer, -42);
  EXPECT_TRUE(got[3].is_nil());
  EXPECT_TRUE(got[4].is_nil());
  EXPECT_TRUE(got[5].is_string());
  EXPECT_EQ(got[5].text, std::string("a\0b\r\n", 5));  // binary-safe
  ASSERT_TRUE(got[6].is_array());
  const auto page = parse_scan_page(got[6]);
  ASSERT_FALSE(page);  // a nil key is not a SCAN page
  ASSERT_EQ(got[6].elements.size(), 2u);
  EXPECT_EQ(got[6].elements[0].text, "17");
  ASSERT_EQ(got[6].elements[1].elements.size(), 2u);
  EXPECT_EQ(got[6].elements[1].elements[0].text, "k");
  EXPECT_TRUE(got[6].elements[1].elements[1].is_nil());
}

// Found by redis_reply_fuzz: a 12-byte array header made hiredis allocate 6 GB for element
// pointers before a single element had arrived. The limited reader refuses the header itself.
TEST(RedisReply, AnArrayAnnouncingTooManyElementsIsRefusedBeforeAnyAllocation) {
  for (const std::string_view header : {"*777777772\r\n", "*100001\r\n", "*-2\r\n"}) {
    auto reader = make_reader();
    ASSERT_EQ(redisReaderFeed(reader.get(), header.data(), header.size()), REDIS_OK);
    void* raw = nullptr;
    EXPECT_EQ(redisReaderGetReply(reader.get(), &raw), REDIS_ERR) << header;
    EXPECT_EQ(raw, nullptr);
  }
  // Up to the limit, an array is what it always was; its elements still have to arrive.
  auto reader = make_reader();
  const std::string_view most = "*100000\r\n";
  ASSERT_EQ(redisReaderFeed(reader.get(), most.data(), most.size()), REDIS_OK);
  void* raw = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader.get(), &raw), REDIS_OK);
  EXPECT_EQ(raw, nullptr);  // incomplete
  const auto nested = read_replies("*1\r\n*2\r\n:1\r\n*0\r\n");
  ASSERT_EQ(nested.size(), 1u);
  ASSERT_EQ(nested[0].elements.size(), 1u);
  EXPECT_EQ(nested[0].elements[0].elements.size(), 2u);
}

TEST(RedisScan, PageParsing) {
  const auto page = parse_scan_page(array({string("17"), array({string("a"), string("b")})}));
  ASSERT_TRUE(page);
  EXPECT_EQ(page->cursor, "17");
  EXPECT_EQ(page->keys, (std::vector<std::string>{"a", "b"}));

  const auto last = parse_scan_page(array({string("0"), array({})}));
  ASSERT_TRUE(last);
  EXPECT_EQ(last->cursor, "0");
  EXPECT_TRUE(last->keys.empty());

  reply integer;
  integer.type = reply::kind::integer;
  EXPECT_FALSE(parse_scan_page(reply{}));
  EXPECT_FALSE(parse_scan_page(array({string("0")})));
  EXPECT_FALSE(parse_scan_page(array({string(""), array({})})));
  EXPECT_FALSE(parse_scan_page(array({string("x1"), array({})})));
  EXPECT_FALSE(parse_scan_page(array({integer, array({})})));
  EXPECT_FALSE(parse_scan_page(array({string("0"), string("a")})));
  EXPECT_FALSE(parse_scan_page(array({string("0"), array({integer})})));
}

host_record make_row(const std::string& cluster, const std::string& address) {
  host_record row;
  row.id = host_id::random();
  row.cluster = cluster;
  row.address = address;
  row.unix_path = "/tmp/x.sock";
  row.hostname = "box";
  row.pid = 42;
  return row;
}

TEST(RedisScan, RowsFromMget) {
  const layout where("c1", 0);
  const auto a = make_row("c1", "127.0.0.1:1000");
  const auto b = make_row("c1", "127.0.0.1:2000");
  const auto foreign = make_row("c2", "127.0.0.1:3000");
  const auto mismatched = make_row("c1", "127.0.0.1:4000");
  const std::vector<std::string> keys = {
      where.key(b.id),          where.key(a.id),          where.key(host_id::random()),
      where.key(foreign.id),    where.key(mismatched.id), where.key(host_id::random()),
      "galaxies:c1:host:bogus",
  };
  reply nil;
  reply integer;
  integer.type = reply::kind::integer;
  auto mismatched_other = mismatched;
  mismatched_other.id = host_id::random();  // a value naming another id than its key
  const auto values = array({
      string(row_to_text(b, expiry_field::absent)),
      string(row_to_text(a, expiry_field::absent)),
      nil,  // expired between SCAN and MGET: skipped silently
      string(row_to_text(foreign, expiry_field::absent)),
      string(row_to_text(mismatched_other, expiry_field::absent)),
      string("{not json"),
      string(row_to_text(make_row("c1", "x"), expiry_field::absent)),
  });
  parsed_rows out;
  ASSERT_TRUE(parse_rows(where, keys, values, out));
  ASSERT_EQ(out.rows.size(), 2u);
  EXPECT_EQ(out.rows[0].id, std::min(a.id, b.id));  // sorted by id
  EXPECT_EQ(out.rows[1].id, std::max(a.id, b.id));
  const auto& got_a = out.rows[0].id == a.id ? out.rows[0] : out.rows[1];
  EXPECT_EQ(got_a.address, a.address);
  EXPECT_EQ(got_a.unix_path, a.unix_path);
  EXPECT_EQ(got_a.hostname, a.hostname);
  EXPECT_EQ(got_a.pid, a.pid);
  EXPECT_EQ(got_a.expires_ms, 0);
  ASSERT_EQ(out.malformed.size(), 4u);
  const auto reason_of = [&](const std::string& key) {
    for (const auto& bad : out.malformed)
      if (bad.key == key) return bad.why;
    return std::error_code();
  };
  EXPECT_EQ(reason_of(where.key(foreign.id)), row_error::foreign_key);
  EXPECT_EQ(reason_of(where.key(mismatched.id)), row_error::foreign_key);
  EXPECT_EQ(reason_of(keys[5]), row_error::not_json);

  // A value failing the row checks every backend shares, and one too large to be parsed.
  auto hostile = make_row("c1", "127.0.0.1:5000");
  hostile.hostname = "\x1b]0;owned\x07";
  auto huge = make_row("c1", "127.0.0.1:6000");
  huge.unix_path = std::string(5000, 'u');
  parsed_rows checked;
  ASSERT_TRUE(parse_rows(where, {where.key(hostile.id), where.key(huge.id)},
                         array({string(row_to_text(hostile, expiry_field::absent)),
                                string(row_to_text(huge, expiry_field::absent))}),
                         checked));
  EXPECT_TRUE(checked.rows.empty());
  ASSERT_EQ(checked.malformed.size(), 2u);
  EXPECT_EQ(checked.malformed[0].why, row_error::bad_hostname);
  EXPECT_EQ(checked.malformed[1].why, row_error::not_json) << "over max_registry_row_size";

  // A value of another type (MGET answers nil for it) and a wrongly shaped reply.
  parsed_rows other;
  EXPECT_TRUE(parse_rows(where, {where.key(a.id)}, array({integer}), other));
  EXPECT_TRUE(other.rows.empty());
  EXPECT_EQ(other.malformed.size(), 1u);
  EXPECT_FALSE(parse_rows(where, {where.key(a.id)}, array({}), other));
  EXPECT_FALSE(parse_rows(where, {where.key(a.id)}, string("x"), other));
}

}  // namespace
}  // namespace galaxies::registry::redis
