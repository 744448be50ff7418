// A node_core driven by hand: the test plays its master over a socketpair, feeding it frames one
// by one and reading back what the node wrote. The node starts ready, knowing nodes x_ and y_.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "wire/control.hpp"
#include "wire/frame.hpp"
#include "wire/groups.hpp"
#include "wire/message.hpp"
#include "worker/node_core.hpp"

namespace galaxies::detail::test {

using namespace std::chrono_literals;

class node_core_harness : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2] = {-1, -1};
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    master_fd_ = fds[1];
    const asio::generic::stream_protocol unix_stream(AF_UNIX, SOCK_STREAM);
    node_core::settings s;
    s.role = wire::role::attached;
    s.cluster = "unit";
    configure(s);
    core_ = std::make_shared<node_core>(io_.get_executor(), s);
    core_->connect(transport::socket(io_, unix_stream, fds[0]));

    wire::welcome w;
    w.host = host_;
    w.cluster = "unit";
    w.flow_window = limits::default_flow_window;
    w.flow_budget = 32u << 20;
    w.slot = welcome_slot_;
    w.heartbeat_ms = welcome_heartbeat_ms_;
    feed([&](auto& out) { wire::append_welcome(out, w); });
    const std::vector<wire::node_entry> nodes = {{x_, host_, 1}, {y_, host_, 2}};
    feed([&](auto& out) { wire::append_nodes_up(out, nodes, true); });
    // Ready once the groups snapshot that follows is complete (protocol.md §5.1).
    ASSERT_FALSE(core_->ready());
    feed([&](auto& out) { wire::append_groups_up(out, {}, true); });
    ASSERT_TRUE(core_->ready());
    written();  // the hello
  }

  // A test's own settings for the node, before it is made.
  virtual void configure(node_core::settings&) {}

  void TearDown() override {
    core_->stop();
    io_.run_for(20ms);
    ::close(master_fd_);
  }

  // A frame from "the master", handed to the node as its link would.
  template <class Encode>
  void feed(Encode encode) {
    std::vector<std::byte> bytes;
    encode(bytes);
    const auto r = wire::frame_parser().parse(bytes);
    ASSERT_EQ(r.state, wire::parse_result::status::frame);
    core_->on_frame(r.frame);
  }

  // Every whole frame the node has written to its master since the last call (the start of a
  // frame still being written waits for the next call).
  std::vector<std::vector<std::byte>> written() {
    io_.run_for(20ms);
    const std::size_t had = unread_.size();
    unread_.resize(had + (1 << 20));
    const ssize_t n = ::recv(master_fd_, unread_.data() + had, 1 << 20, MSG_DONTWAIT);
    unread_.resize(had + (n > 0 ? static_cast<std::size_t>(n) : 0));
    std::vector<std::vector<std::byte>> frames;
    std::span<const std::byte> rest(unread_);
    for (wire::parse_result r;
         (r = wire::frame_parser().parse(rest)).state == wire::parse_result::status::frame;) {
      frames.emplace_back(r.frame.bytes.begin(), r.frame.bytes.end());
      rest = rest.subspan(r.frame.bytes.size());
    }
    unread_.erase(unread_.begin(), unread_.end() - static_cast<std::ptrdiff_t>(rest.size()));
    return frames;
  }

  // The ids of the requests among the frames the node has written since the last call.
  std::vector<std::uint64_t> requests_written() {
    std::vector<std::uint64_t> ids;
    for (const auto& f : written()) {
      const auto view = wire::frame_parser().parse(f).frame;
      wire::message_view m;
      if (view.header.type == wire::frame_type::request && !wire::decode_message(view, m))
        ids.push_back(m.request_id);
    }
    return ids;
  }

  // Set by a fixture's constructor: the welcome then names this slot, as to a worker.
  std::optional<std::uint32_t> welcome_slot_;
  // Set by a fixture's constructor: the master then asks for heartbeats this often.
  std::optional<std::uint32_t> welcome_heartbeat_ms_;
  asio::io_context io_;
  int master_fd_ = -1;
  std::vector<std::byte> unread_;  // the start of a frame written() has not seen whole yet
  std::shared_ptr<node_core> core_;
  const host_id host_ = host_id::random();
  const node_id x_ = node_id::random();
  const node_id y_ = node_id::random();
};

}  // namespace galaxies::detail::test
