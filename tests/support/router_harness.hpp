// A router on the test's own io_context, with fake peers, nodes and observers at the other end of
// socketpairs: every frame the router takes and sends goes through a real socket and its real
// link, but no process, no TCP and no registry is involved. The fake ends are driven with plain
// non-blocking calls, so they do not depend on the code under test.
// Threading: one thread, the test's; run_until() runs the router's handlers and pumps the ends.
#pragma once

#include <asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "router/router.hpp"
#include "support/raw_connection.hpp"
#include "wire/control.hpp"
#include "wire/message.hpp"

namespace galaxies::test {

using namespace std::chrono_literals;

// The test's end of a socketpair.
class fake_end {
 public:
  explicit fake_end(int fd);
  ~fake_end();
  fake_end(const fake_end&) = delete;
  fake_end& operator=(const fake_end&) = delete;

  // Writes all of `bytes` unless the router has closed its end; false then.
  bool send(std::span<const std::byte> bytes);
  // Queues `bytes` to be written as the router reads them (pump() writes what the socket takes):
  // for a sender that must not block when the router stops reading it.
  void send_later(std::span<const std::byte> bytes);
  std::size_t unsent() const { return out_.size(); }
  // Takes what has arrived; notes the end of the stream.
  void pump();
  // A peer that stops reading: pump() takes nothing until resume_reading().
  void stop_reading() { reading_ = false; }
  void resume_reading() { reading_ = true; }
  void close();

  bool closed() const { return closed_; }
  const frame_bytes& received() const { return in_; }
  std::vector<wire::frame_view> frames() const { return frames_in(in_); }
  std::size_t count(wire::frame_type type) const;
  // The last frame of `type` received, if any.
  std::optional<wire::frame_view> last(wire::frame_type type) const;
  void forget_received() { in_.clear(); }

 private:
  int fd_;
  frame_bytes in_;
  frame_bytes out_;
  bool closed_ = false;
  bool reading_ = true;
};

struct harness_options {
  host_id self = host_id(uuid({0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));
  std::string cluster = "unit";
  std::optional<std::string> secret;
  bool allow_insecure = false;
  limits_options limits;
  heartbeat_options heartbeat{std::chrono::milliseconds(0), 6};  // none unless a test wants them
  // router::callbacks::cpu_wait: what a process of this machine waited for a core. Empty: none.
  std::function<std::function<std::optional<std::chrono::nanoseconds>()>(pid_t)> cpu_wait;
};

class router_harness {
 public:
  explicit router_harness(harness_options opts = {});
  ~router_harness();

  router::router& router() { return *router_; }
  const harness_options& options() const { return opts_; }
  asio::io_context& io() { return io_; }

  // A host dialling in from `from` (loopback unless said otherwise).
  fake_end& connect_host(transport::remote_address from = {"127.0.0.1:40000", true});
  // A local client on the Unix socket (already checked to be this user's).
  fake_end& connect_local();
  // A worker the supervisor started in `slot` as process `pid` (the test plays the process).
  fake_end& connect_worker(pid_t pid, std::uint32_t slot);
  // The router's oldest dial not yet answered, completed with a socketpair whose test end plays
  // the host it dialled. Null if the router has not dialled.
  fake_end* answer_dial(std::string* address = nullptr);
  std::size_t pending_dials() const { return dials_.size(); }

  // Runs the router's handlers and pumps every fake end until `done` holds; false after `limit`.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 3s);
  // Runs for `how_long` (for "nothing happens" checks, always bounded and short).
  void run_for(std::chrono::milliseconds how_long);

 private:
  harness_options opts_;
  asio::io_context io_;
  std::unique_ptr<router::router> router_;
  std::vector<std::unique_ptr<fake_end>> ends_;
  std::deque<std::pair<std::string, transport::connect_handler>> dials_;
};

// ---- frames a test sends --------------------------------------------------------------------

frame_bytes host_hello(const host_id& sender, const host_id& target, const std::string& cluster,
                       const std::optional<wire::auth_value>& nonce = std::nullopt,
                       const std::string& hostname = "peer-host",
                       const std::string& listen = "127.0.0.1:7001");
frame_bytes node_hello(const node_id& sender, const std::string& cluster,
                       wire::role role = wire::role::attached);
frame_bytes nodes_up(const std::vector<wire::node_entry>& nodes, bool snapshot = true);
frame_bytes nodes_down(const std::vector<node_id>& nodes, leave_reason why);
frame_bytes message(wire::frame_type type, const node_id& src, const node_id& dst,
                    std::uint64_t request_id = 0, std::uint32_t word = 0,
                    std::string_view command = "cmd", std::string_view payload = "payload");
frame_bytes auth_proof(const wire::auth_value& proof);

// Decoded views of what the router sent.
std::optional<wire::refuse> refusal(const fake_end& end);
std::optional<wire::welcome> welcome_of(const fake_end& end);
std::optional<wire::auth_value> challenge_of(const fake_end& end);
// Every node announced up (then not down) to this end, in order.
std::vector<node_id> nodes_seen(const fake_end& end);
// Every message frame received, decoded.
std::vector<wire::message_view> messages(const fake_end& end);
bool contains(const frame_bytes& bytes, std::string_view text);

}  // namespace galaxies::test
