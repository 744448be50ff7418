// Bad input at a master's doors (its TCP port and its Unix socket), played by raw sockets: each
// bad connection is closed alone, promptly, with a logged reason, and a stream of requests between
// two hosts carries on undisturbed meanwhile.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/endian.hpp"
#include "base/limits.hpp"
#include "support/cluster.hpp"
#include "support/echo_stream.hpp"
#include "support/eventually.hpp"
#include "support/raw_connection.hpp"
#include "wire/control.hpp"
#include "wire/frame.hpp"
#include "wire/message.hpp"

namespace galaxies::test {
namespace {

using steady = std::chrono::steady_clock;

using frame_bytes = std::vector<std::byte>;

// Well below handshake_timeout (5 s): a master that ignored the bad input and only dropped the
// connection when the handshake timed out fails the test.
constexpr auto close_deadline = 2500ms;
constexpr auto join_deadline = 20s;

// ---- crafted input -------------------------------------------------------------------------

frame_bytes raw_header(std::uint32_t size, std::uint8_t type, std::uint16_t aux = 0) {
  frame_bytes out(wire::header_size);
  base::store_le(out.data(), size);
  base::store_le(out.data() + 4, type);
  base::store_le(out.data() + 5, std::uint8_t{0});
  base::store_le(out.data() + 6, aux);
  return out;
}

frame_bytes text_bytes(std::string_view text) {
  const auto view = as_bytes(text);
  return frame_bytes(view.begin(), view.end());
}

enum class door { tcp, unix_socket };

// A hello that the given door would accept, before a case spoils one field of it.
wire::hello good_hello(door d, const std::string& cluster, const uuid& host) {
  wire::hello h;
  h.role = d == door::tcp ? wire::role::host : wire::role::attached;
  h.sender = uuid::random();
  h.target = d == door::tcp ? host : uuid{};
  h.pid = static_cast<std::uint32_t>(::getpid());
  h.cluster = cluster;
  if (d == door::tcp) h.listen = "127.0.0.1:1";  // required of role host; never dialled back
  h.max_frame = limits::default_max_frame_size;
  h.flow_window = limits::default_flow_window;
  return h;
}

frame_bytes encode(const wire::hello& h) {
  frame_bytes out;
  wire::append_hello(out, h);
  return out;
}

struct bad_case {
  std::string name;
  frame_bytes bytes;
  bool half_close = false;                  // shutdown(SHUT_WR) after the bytes: EOF inside a frame
  std::optional<wire::refuse_code> refuse;  // expected before the close
  std::string log_says;                     // the master's log gains a line with this
};

std::vector<bad_case> bad_cases(door d, const std::string& cluster, const uuid& host) {
  std::vector<bad_case> cases;
  const auto hello = [&] { return good_hello(d, cluster, host); };

  cases.push_back({"garbage", text_bytes("\xde\xad\xbe\xefGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                   false, std::nullopt, "bad input"});
  // Only the header is sent: the master must refuse it from those 8 bytes.
  cases.push_back({"oversized header", raw_header(0x7fffffff, 0x01), false, std::nullopt,
                   "frame larger than the maximum frame size"});
  // A legal size after the handshake, but not before it: a stranger must not make the master
  // reserve megabytes by announcing a large hello (limits::handshake_max_frame_size).
  cases.push_back({"1 MiB hello before the handshake", raw_header((1u << 20) - 4, 0x01), false,
                   std::nullopt, "frame larger than the maximum frame size"});
  cases.push_back(
      {"size field 3", raw_header(3, 0x01), false, std::nullopt, "frame size field below 4"});
  cases.push_back(
      {"size field 0", raw_header(0, 0x01), false, std::nullopt, "frame size field below 4"});
  cases.push_back({"unknown type", raw_header(4, 0x7e), false, std::nullopt, "unknown frame type"});
  {
    frame_bytes message = raw_header(wire::message_header_size - 4 + 8, 0x20, 300);
    message.resize(wire::message_header_size + 8);
    cases.push_back(
        {"command longer than allowed", message, false, std::nullopt, "malformed message frame"});
  }
  {
    frame_bytes whole = encode(hello());
    whole.resize(whole.size() / 2);
    cases.push_back(
        {"truncated hello, then EOF", whole, true, std::nullopt, "protocol error (End of file)"});
  }
  {
    frame_bytes partial = raw_header(64, 0x01);
    partial.resize(3);
    cases.push_back({"truncated header, then EOF", partial, true, std::nullopt,
                     "protocol error (End of file)"});
  }
  for (const std::uint16_t version :
       {std::uint16_t{1}, std::uint16_t(wire::protocol_version + 1)}) {
    // 1: a host from before send_batch (protocol.md §4.2); the next: one from the future.
    auto h = hello();
    h.version = version;
    cases.push_back({"hello of version " + std::to_string(version), encode(h), false,
                     wire::refuse_code::bad_version, "refused: bad_version"});
  }
  {
    auto h = hello();
    h.cluster = "not-" + cluster;
    cases.push_back({"hello of another cluster", encode(h), false, wire::refuse_code::wrong_cluster,
                     "refused: wrong_cluster"});
  }
  {
    auto h = hello();
    h.target = uuid::random();
    cases.push_back({"hello for another host", encode(h), false, wire::refuse_code::wrong_target,
                     "refused: wrong_target"});
  }
  if (d == door::tcp) {
    // A dialling host must name the host it expects: "any" is only for local connections.
    auto h = hello();
    h.target = uuid{};
    cases.push_back({"host hello for any host", encode(h), false, wire::refuse_code::wrong_target,
                     "refused: wrong_target"});
  }
  {
    auto h = hello();
    h.role = d == door::tcp ? wire::role::attached : wire::role::host;
    h.listen = "127.0.0.1:1";
    h.target = d == door::tcp ? host : uuid{};
    cases.push_back({"hello of the wrong role", encode(h), false, wire::refuse_code::wrong_role,
                     "refused: wrong_role"});
  }
  {
    frame_bytes h = encode(hello());
    h[wire::header_size] = std::byte{'X'};  // magic "GLXY" -> "XLXY"
    cases.push_back(
        {"hello with bad magic", h, false, wire::refuse_code::malformed, "refused: malformed"});
  }
  {
    frame_bytes message;
    const std::error_code ec = wire::append_message(
        message, wire::frame_type::send, node_id::random(), node_id::random(), 0, 0, "echo",
        as_bytes("before hello"), limits::default_max_frame_size);
    EXPECT_FALSE(ec);
    cases.push_back({"message before hello", message, false, std::nullopt,
                     d == door::tcp ? "unexpected send in the handshake" : "send before hello"});
  }
  return cases;
}

std::size_t occurrences(const std::string& text, const std::string& phrase) {
  std::size_t n = 0;
  for (auto at = text.find(phrase); at != std::string::npos; at = text.find(phrase, at + 1)) ++n;
  return n;
}

std::uint16_t tcp_port_of(host_process& h) {
  const std::string address = h.address();
  const auto colon = address.rfind(':');
  EXPECT_NE(colon, std::string::npos)
      << "no TCP address for " << h.name() << ": '" << address << "'";
  if (colon == std::string::npos) return 0;
  EXPECT_EQ(address.substr(0, colon), "127.0.0.1");
  return static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1)));
}

raw_connection open_door(host_process& h, door d, std::uint16_t port) {
  return d == door::tcp ? raw_connection::tcp(port) : raw_connection::unix_socket(h.unix_path());
}

bool knows(test_node& observer, const node_id& other) {
  for (const auto& info : observer.nodes())
    if (info.id == other) return true;
  return false;
}

// ---- the tests -----------------------------------------------------------------------------

class bad_input : public ::testing::Test {
 protected:
  void SetUp() override {
    hosts_ = {&cluster_.add_host(with_workers(1)), &cluster_.add_host(with_workers(1))};
    for (auto* h : hosts_) ASSERT_EQ(h->wait_started(1).size(), 1u);
    a_ = std::make_unique<test_node>(hosts_[0]->unix_path(), cluster_.name());
    b_ = std::make_unique<test_node>(hosts_[1]->unix_path(), cluster_.name());
    ASSERT_TRUE(a_->wait_ready());
    ASSERT_TRUE(b_->wait_ready());
    b_->run(
        [](node& n) { n.on("echo", [](const message& m, responder r) { r.reply(m.payload); }); });
    ASSERT_TRUE(eventually(join_deadline, [&] {
      return knows(*a_, b_->id()) && knows(*b_, a_->id());
    })) << "the two hosts never linked";
    for (auto* h : hosts_) {
      ports_.push_back(tcp_port_of(*h));
      ASSERT_NE(ports_.back(), 0);
      auto id = uuid::parse(h->host_id());
      ASSERT_TRUE(id.has_value()) << "host id '" << h->host_id() << "'";
      host_ids_.push_back(*id);
    }
  }

  // Nothing that should have stayed up went down.
  void expect_undisturbed(const echo_stream& stream) {
    EXPECT_EQ(stream.failed(), 0u) << stream.first_failure();
    EXPECT_GT(stream.ok(), 0u) << "the request stream never ran";
    EXPECT_TRUE(a_->left().empty()) << "a saw a node leave: " << a_->left().front();
    EXPECT_TRUE(b_->left().empty()) << "b saw a node leave: " << b_->left().front();
    for (const auto& e : cluster_.all_events())
      EXPECT_NE(e.name, "nodeLeft")
          << "worker " << e.observer << " saw " << e.node << " leave (" << e.reason << ")";
    for (auto* h : hosts_) EXPECT_TRUE(h->running()) << h->name() << " is gone";
  }

  cluster cluster_;
  std::vector<host_process*> hosts_;
  std::vector<std::uint16_t> ports_;
  std::vector<uuid> host_ids_;
  std::unique_ptr<test_node> a_;
  std::unique_ptr<test_node> b_;
};

TEST_F(bad_input, each_bad_connection_is_closed_alone_with_a_logged_reason) {
  echo_stream stream(*a_, b_->id());
  ASSERT_TRUE(eventually(10s, [&] { return stream.ok() > 0; })) << stream.first_failure();

  for (std::size_t i = 0; i < hosts_.size(); ++i) {
    host_process& h = *hosts_[i];
    for (door d : {door::tcp, door::unix_socket}) {
      for (const auto& c : bad_cases(d, cluster_.name(), host_ids_[i])) {
        SCOPED_TRACE(h.name() + (d == door::tcp ? " tcp: " : " unix: ") + c.name);
        const std::size_t logged_before = occurrences(h.log(), c.log_says);
        const std::uint64_t ok_before = stream.ok();

        raw_connection conn = open_door(h, d, ports_[i]);
        ASSERT_TRUE(conn.connected());
        conn.write(c.bytes);
        if (c.half_close) conn.shutdown_write();
        const read_outcome got = conn.read_until_closed(close_deadline);

        EXPECT_TRUE(got.closed) << "still open after " << got.after.count() << " ms";
        EXPECT_TRUE(got.error == 0 || got.error == ECONNRESET) << std::strerror(got.error);
        const auto frames = frames_in(got.data);
        if (c.refuse) {
          ASSERT_EQ(frames.size(), 1u)
              << "expected exactly one refuse frame, got " << got.data.size() << " bytes";
          ASSERT_EQ(frames[0].header.type, wire::frame_type::refuse);
          wire::refuse r;
          ASSERT_FALSE(wire::decode_refuse(frames[0], r));
          EXPECT_EQ(r.code, *c.refuse) << wire::to_string(r.code) << ": " << r.text;
          // A stranger on TCP learns the code only (never our cluster or UUID); a local client
          // (this user's) is told why.
          if (d == door::tcp)
            EXPECT_TRUE(r.text.empty()) << "told a stranger: " << r.text;
          else
            EXPECT_FALSE(r.text.empty());
        } else {
          EXPECT_TRUE(got.data.empty())
              << "the master answered " << got.data.size() << " bytes to bad input";
        }
        EXPECT_TRUE(
            eventually(5s, [&] { return occurrences(h.log(), c.log_says) > logged_before; }))
            << "the log never said '" << c.log_says << "'";
        // Traffic kept flowing across the bad connection's lifetime.
        EXPECT_TRUE(eventually(10s, [&] { return stream.ok() > ok_before; }))
            << stream.first_failure();
      }
    }
  }
  stream.stop();
  ASSERT_TRUE(stream.stopped());
  expect_undisturbed(stream);
}

TEST_F(bad_input, a_burst_of_bad_connections_at_once_disturbs_nothing) {
  echo_stream stream(*a_, b_->id());
  ASSERT_TRUE(eventually(10s, [&] { return stream.ok() > 0; })) << stream.first_failure();

  // Every case at every door of both hosts, three times over, all open together.
  struct pending {
    raw_connection conn;
    std::string what;
  };
  std::vector<pending> open;
  for (int round = 0; round < 3; ++round)
    for (std::size_t i = 0; i < hosts_.size(); ++i)
      for (door d : {door::tcp, door::unix_socket})
        for (const auto& c : bad_cases(d, cluster_.name(), host_ids_[i])) {
          raw_connection conn = open_door(*hosts_[i], d, ports_[i]);
          ASSERT_TRUE(conn.connected()) << c.name;
          conn.write(c.bytes);
          if (c.half_close) conn.shutdown_write();
          open.push_back({std::move(conn), hosts_[i]->name() + " " + c.name});
        }
  const std::uint64_t ok_before = stream.ok();
  for (auto& p : open) {
    const read_outcome got = p.conn.read_until_closed(close_deadline);
    EXPECT_TRUE(got.closed) << p.what << ": still open after " << got.after.count() << " ms";
  }
  EXPECT_TRUE(eventually(10s, [&] { return stream.ok() > ok_before; })) << stream.first_failure();
  stream.stop();
  ASSERT_TRUE(stream.stopped());
  expect_undisturbed(stream);
}

// ---- nodes that turn bad after joining ------------------------------------------------------

// A node played by a raw socket: it completes the handshake, and the test nodes see it join.
struct raw_node {
  raw_connection conn;
  node_id id;
};

frame_bytes message_frame(wire::frame_type type, const node_id& src, const node_id& dst,
                          std::uint64_t request_id, std::string_view command) {
  frame_bytes out;
  const std::error_code ec =
      wire::append_message(out, type, src, dst, request_id, 0, command, as_bytes("spoiled"),
                           limits::default_max_frame_size);
  EXPECT_FALSE(ec) << ec.message();
  return out;
}

class bad_node : public bad_input {
 protected:
  raw_node join_raw_node(std::size_t host) {
    raw_node r{raw_connection::unix_socket(hosts_[host]->unix_path()), {}};
    EXPECT_TRUE(r.conn.connected());
    const wire::hello h = good_hello(door::unix_socket, cluster_.name(), host_ids_[host]);
    EXPECT_TRUE(r.conn.write(encode(h)));
    r.id = node_id(h.sender);
    EXPECT_TRUE(eventually(join_deadline, [&] { return knows(*a_, r.id) && knows(*b_, r.id); }))
        << "the raw node never joined";
    return r;
  }

  // `bad` from a registered node: its master closes that connection, and everyone sees exactly
  // that node leave, once, with reason protocol_error.
  void expect_cut_off(raw_node& r, const frame_bytes& bad, const std::string& log_says) {
    host_process& home = *hosts_[0];
    const std::size_t logged_before = occurrences(home.log(), log_says);
    r.conn.write(bad);
    const read_outcome got = r.conn.read_until_closed(close_deadline);
    EXPECT_TRUE(got.closed) << "still open after " << got.after.count() << " ms";
    EXPECT_TRUE(eventually(5s, [&] { return occurrences(home.log(), log_says) > logged_before; }))
        << "the log never said '" << log_says << "'";
    EXPECT_TRUE(eventually(10s, [&] { return !knows(*a_, r.id) && !knows(*b_, r.id); }));
    for (auto* host : hosts_)
      EXPECT_TRUE(host->wait_events(10s,
                                    [&](const std::vector<event>& events) {
                                      for (const auto& e : events)
                                        if (e.name == "nodeLeft" && e.node == r.id.to_string())
                                          return true;
                                      return false;
                                    }))
          << host->name() << "'s worker never saw the bad node leave";
  }

  // Only the raw nodes left, each once per observer, each for protocol_error.
  void expect_only_left(const std::vector<node_id>& gone, const echo_stream& stream) {
    std::vector<std::string> ids;
    for (const auto& id : gone) ids.push_back(id.to_string());
    std::map<std::string, int> left_events;
    for (const auto& e : cluster_.all_events())
      if (e.name == "nodeLeft") {
        EXPECT_NE(std::find(ids.begin(), ids.end(), e.node), ids.end())
            << "an innocent node left: " << e.node << " (" << e.reason << ")";
        EXPECT_EQ(e.reason, "protocol_error") << e.node;
        ++left_events[e.node + " seen by " + e.observer];
      }
    for (const auto& [what, n] : left_events) EXPECT_EQ(n, 1) << what;
    EXPECT_EQ(left_events.size(), 2 * gone.size()) << "each of the two workers sees each leave";
    EXPECT_EQ(a_->left(), ids);
    EXPECT_EQ(b_->left(), ids);
    for (auto* t : {a_.get(), b_.get()})
      for (const auto& [id, why] : t->left_reasons())
        EXPECT_EQ(why, leave_reason::protocol_error) << id << ": " << to_string(why);
    EXPECT_EQ(stream.failed(), 0u) << stream.first_failure();
    for (auto* host : hosts_) EXPECT_TRUE(host->running()) << host->name();
  }
};

TEST_F(bad_node, garbage_after_joining_cuts_off_that_node_only) {
  echo_stream stream(*a_, b_->id());
  ASSERT_TRUE(eventually(10s, [&] { return stream.ok() > 0; })) << stream.first_failure();
  raw_node r = join_raw_node(0);
  expect_cut_off(r, text_bytes("\xde\xad\xbe\xefnot a frame"), "bad input");
  const std::uint64_t ok_before = stream.ok();
  EXPECT_TRUE(eventually(10s, [&] { return stream.ok() > ok_before; })) << stream.first_failure();
  stream.stop();
  expect_only_left({r.id}, stream);
}

// Frames that pass the routing checks but that the receiving node would refuse as malformed: the
// sender's master must stop them at the sender's connection, or one broken node cuts innocent
// ones off their masters (the worker exits and is respawned).
TEST_F(bad_node, malformed_messages_cut_off_their_sender_not_their_target) {
  echo_stream stream(*a_, b_->id());
  ASSERT_TRUE(eventually(10s, [&] { return stream.ok() > 0; })) << stream.first_failure();
  const node_id worker_b = [&] {
    const auto started = hosts_[1]->started_nodes();
    EXPECT_EQ(started.size(), 1u);
    return started.empty() ? node_id{} : node_id::parse(started[0]).value_or(node_id{});
  }();
  ASSERT_FALSE(worker_b.is_nil());

  std::vector<node_id> gone;
  {
    SCOPED_TRACE("request without an id, to a remote worker");
    raw_node r = join_raw_node(0);
    gone.push_back(r.id);
    expect_cut_off(r, message_frame(wire::frame_type::request, r.id, worker_b, 0, "echo"),
                   "closed: protocol error");
  }
  {
    SCOPED_TRACE("reply without an id, to a remote attached node");
    raw_node r = join_raw_node(0);
    gone.push_back(r.id);
    expect_cut_off(r, message_frame(wire::frame_type::reply, r.id, b_->id(), 0, ""),
                   "closed: protocol error");
  }
  {
    SCOPED_TRACE("a message in another node's name");
    raw_node r = join_raw_node(0);
    gone.push_back(r.id);
    expect_cut_off(r, message_frame(wire::frame_type::send, b_->id(), a_->id(), 0, "echo"),
                   "forged source");
  }
  const std::uint64_t ok_before = stream.ok();
  EXPECT_TRUE(eventually(10s, [&] { return stream.ok() > ok_before; })) << stream.first_failure();
  stream.stop();
  expect_only_left(gone, stream);
}

}  // namespace
}  // namespace galaxies::test
