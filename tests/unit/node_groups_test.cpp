// Groups inside a node (docs/protocol.md §4.3, §5.1): its joins and leaves told to its master,
// every member change seen exactly once, a departed node's groups left before it, the filter
// after leave(), and publish as one frame per host, debiting each listed member. node_core is
// driven by hand: the test plays its master, frame by frame.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "node_core_harness.hpp"
#include "wire/credit.hpp"
#include "wire/groups.hpp"
#include "wire/message.hpp"

namespace galaxies::detail {
namespace {

using test::node_core_harness;

class NodeGroups : public node_core_harness {
 protected:
  void SetUp() override {
    node_core_harness::SetUp();
    core_->events().group_joined = [this](std::string_view g, const node_info& n) {
      log_.push_back("+" + std::string(g) + " " + name(n.id));
    };
    core_->events().group_left = [this](std::string_view g, const node_info& n) {
      log_.push_back("-" + std::string(g) + " " + name(n.id));
    };
    core_->events().node_left = [this](const node_info& n, leave_reason, int) {
      log_.push_back("left " + name(n.id));
    };
    const std::vector<wire::node_entry> far = {{z_, host_2_, 3}};
    feed([&](auto& out) { wire::append_nodes_up(out, far, false); });
  }

  std::string name(const node_id& id) const {
    if (id == core_->id()) return "self";
    if (id == x_) return "x";
    if (id == y_) return "y";
    if (id == z_) return "z";
    return "?";
  }

  void groups_up(std::vector<wire::group_entry> entries) {
    feed([&](auto& out) { wire::append_groups_up(out, entries, false); });
  }
  void groups_down(std::vector<wire::group_entry> entries) {
    feed([&](auto& out) { wire::append_groups_down(out, entries); });
  }
  void publish_from(const node_id& src, const host_id& dst, std::string_view group,
                    std::vector<node_id> members, std::string_view payload = "p") {
    feed([&](auto& out) {
      ASSERT_FALSE(wire::append_publish(out, src, dst, "cmd", group, members, as_bytes(payload),
                                        limits::default_max_frame_size));
    });
  }

  static std::vector<wire::group_entry> groups_in(const std::vector<std::byte>& frame,
                                                  wire::frame_type& type) {
    const auto view = wire::frame_parser().parse(frame).frame;
    type = view.header.type;
    std::vector<wire::group_entry> entries;
    bool snapshot = false;
    if (type == wire::frame_type::groups_up) {
      EXPECT_FALSE(wire::decode_groups_up(view, entries, snapshot));
    } else if (type == wire::frame_type::groups_down) {
      EXPECT_FALSE(wire::decode_groups_down(view, entries));
    }
    return entries;
  }

  // Everything written until the node has nothing more: large frames take several reads.
  std::vector<std::vector<std::byte>> all_written() {
    std::vector<std::vector<std::byte>> frames;
    for (auto more = written(); !more.empty(); more = written())
      frames.insert(frames.end(), more.begin(), more.end());
    return frames;
  }

  std::vector<std::string> log_;
  const host_id host_2_ = host_id::random();
  const node_id z_ = node_id::random();
};

TEST_F(NodeGroups, AJoinIsToldToTheMasterAndSeenWhenItComesBack) {
  ASSERT_FALSE(core_->join("room"));
  auto frames = written();
  ASSERT_EQ(frames.size(), 1u);
  wire::frame_type type{};
  EXPECT_EQ(groups_in(frames[0], type), (std::vector<wire::group_entry>{{core_->id(), "room"}}));
  EXPECT_EQ(type, wire::frame_type::groups_up);
  EXPECT_EQ(core_->groups(), std::vector<std::string>{"room"});
  EXPECT_TRUE(core_->members("room").empty()) << "a member only once its master says so";

  EXPECT_FALSE(core_->join("room")) << "joining again succeeds";
  EXPECT_TRUE(written().empty()) << "and sends nothing";

  groups_up({{core_->id(), "room"}});
  EXPECT_EQ(log_, std::vector<std::string>{"+room self"});
  const auto members = core_->members("room");
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].id, core_->id());
  EXPECT_EQ(members[0].host, host_);

  ASSERT_FALSE(core_->leave("room"));
  frames = written();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(groups_in(frames[0], type), (std::vector<wire::group_entry>{{core_->id(), "room"}}));
  EXPECT_EQ(type, wire::frame_type::groups_down);
  EXPECT_TRUE(core_->groups().empty());
  EXPECT_FALSE(core_->leave("room")) << "leaving a group not joined succeeds";
  EXPECT_TRUE(written().empty()) << "and sends nothing";
  groups_down({{core_->id(), "room"}});
  EXPECT_EQ(log_, (std::vector<std::string>{"+room self", "-room self"}));
}

TEST_F(NodeGroups, BadNamesAreRefused) {
  const auto invalid = std::make_error_code(std::errc::invalid_argument);
  EXPECT_EQ(core_->join(""), invalid);
  EXPECT_EQ(core_->join(std::string(limits::max_group_name + 1, 'g')), invalid);
  EXPECT_EQ(core_->join("new\nline"), invalid);
  EXPECT_EQ(core_->join("\xff"), invalid);
  EXPECT_EQ(core_->leave(""), invalid);
  EXPECT_EQ(core_->publish("", "cmd", {}), invalid);
  EXPECT_EQ(core_->publish("g", "", {}), invalid);
  EXPECT_FALSE(core_->join(std::string(limits::max_group_name, 'g')));
  EXPECT_EQ(written().size(), 1u) << "only the good name was told";
}

TEST_F(NodeGroups, EveryChangeIsSeenExactlyOnce) {
  groups_up({{x_, "a"}, {y_, "a"}});
  groups_up({{x_, "a"}});                 // known: ignored
  groups_down({{y_, "b"}});               // not known: ignored
  groups_up({{node_id::random(), "a"}});  // a node not known (it left meanwhile): ignored
  groups_down({{x_, "a"}});
  groups_down({{x_, "a"}});
  EXPECT_EQ(log_, (std::vector<std::string>{"+a x", "+a y", "-a x"}));
  const auto members = core_->members("a");
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].id, y_);
}

TEST_F(NodeGroups, ANodeThatLeavesLeavesEachGroupBeforeItsNodeLeft) {
  groups_up({{x_, "a"}, {x_, "b"}, {y_, "a"}});
  log_.clear();
  const std::vector<wire::node_down_entry> gone = {{x_, leave_reason::exited, 0}};
  feed([&](auto& out) { wire::append_nodes_down(out, gone); });
  ASSERT_EQ(log_.size(), 3u);
  EXPECT_EQ(log_.back(), "left x");
  std::vector<std::string> groups(log_.begin(), log_.end() - 1);
  std::sort(groups.begin(), groups.end());
  EXPECT_EQ(groups, (std::vector<std::string>{"-a x", "-b x"}));
  EXPECT_EQ(core_->members("a").size(), 1u);
  EXPECT_TRUE(core_->members("b").empty());
}

TEST_F(NodeGroups, StoppingLeavesEveryGroupAsThisNodeSawIt) {
  ASSERT_FALSE(core_->join("a"));
  groups_up({{core_->id(), "a"}, {x_, "a"}});
  log_.clear();
  core_->stop();
  std::sort(log_.begin(), log_.end());
  EXPECT_EQ(log_, (std::vector<std::string>{"-a self", "-a x", "left x", "left y", "left z"}));
  EXPECT_EQ(core_->join("b"), errc::shutting_down);
  EXPECT_EQ(core_->leave("a"), errc::shutting_down);
}

TEST_F(NodeGroups, APublishIsHandledOnlyWhileInTheGroup) {
  std::vector<std::string> handled;
  core_->set_handler("cmd", [&](const message& m, responder) {
    handled.push_back(std::string(m.group) + ":" + std::string(as_text(m.payload)));
  });
  ASSERT_FALSE(core_->join("g"));
  publish_from(x_, host_, "g", {y_, core_->id()}, "1");
  ASSERT_FALSE(core_->leave("g"));
  publish_from(x_, host_, "g", {core_->id()}, "2");  // sent before x knew of the leave
  EXPECT_EQ(handled, std::vector<std::string>{"g:1"});
  const auto counters = core_->counters();
  EXPECT_EQ(counters.received, 2u);
  EXPECT_EQ(counters.unhandled, 1u);
  EXPECT_TRUE(core_->ready()) << "a publish after leave is no error";
}

TEST_F(NodeGroups, APublishThatDoesNotListThisNodeIsAProtocolError) {
  ASSERT_FALSE(core_->join("g"));
  publish_from(x_, host_, "g", {y_});
  EXPECT_FALSE(core_->ready());
}

TEST_F(NodeGroups, APublishForAnotherHostIsAProtocolError) {
  ASSERT_FALSE(core_->join("g"));
  publish_from(x_, host_2_, "g", {core_->id()});
  EXPECT_FALSE(core_->ready());
}

TEST_F(NodeGroups, PublishGoesAsOneFramePerHostListingThatHostsMembers) {
  groups_up({{x_, "g"}, {y_, "g"}, {z_, "g"}, {core_->id(), "g"}});
  written();
  ASSERT_FALSE(core_->publish("g", "cmd", as_bytes("data")));
  const auto frames = written();
  ASSERT_EQ(frames.size(), 2u);
  std::map<host_id, std::set<node_id>> listed;
  for (const auto& f : frames) {
    wire::publish_view p;
    ASSERT_FALSE(wire::decode_publish(wire::frame_parser().parse(f).frame, p, 16));
    EXPECT_EQ(p.src, core_->id());
    EXPECT_EQ(p.group, "g");
    EXPECT_EQ(p.command, "cmd");
    EXPECT_EQ(as_text(p.payload), "data");
    for (std::size_t i = 0; i < p.count(); ++i) listed[p.dst].insert(p.member(i));
  }
  EXPECT_EQ(listed[host_], (std::set<node_id>{x_, y_}));
  EXPECT_EQ(listed[host_2_], std::set<node_id>{z_});
  EXPECT_EQ(core_->counters().sent, 1u);
}

TEST_F(NodeGroups, PublishToAGroupWithNoOtherMemberSendsNothing) {
  EXPECT_FALSE(core_->publish("nobody", "cmd", {}));
  groups_up({{core_->id(), "alone"}});
  EXPECT_FALSE(core_->publish("alone", "cmd", {}));
  EXPECT_TRUE(written().empty());
}

TEST_F(NodeGroups, PublishDebitsEachListedMemberAndGoesOnlyIfAllAdmit) {
  groups_up({{x_, "g"}, {z_, "g"}});
  written();
  const std::string payload(100 * 1024, 'p');
  const std::size_t one_host_frame = wire::publish_frame_size(3, 1, 1, payload.size());
  // The window is 256 KiB: two ~100 KiB frames leave too little for a third to each of x and z.
  ASSERT_FALSE(core_->publish("g", "cmd", as_bytes(payload)));
  ASSERT_FALSE(core_->publish("g", "cmd", as_bytes(payload)));
  EXPECT_EQ(all_written().size(), 4u);
  EXPECT_EQ(core_->publish("g", "cmd", as_bytes(payload)), errc::overloaded);
  EXPECT_TRUE(all_written().empty()) << "nothing of a refused publish goes";
  // y is not a member: nothing was debited for it.
  EXPECT_FALSE(core_->send(y_, "cmd", as_bytes(payload)));
  all_written();
  // x grants what it consumed; z has not: still nobody gets it.
  const auto grant = [&](const node_id& from) {
    feed([&](auto& out) {
      wire::append_credit(out, {from, core_->id(), static_cast<std::uint32_t>(2 * one_host_frame),
                                limits::default_flow_window});
    });
  };
  grant(x_);
  EXPECT_EQ(core_->publish("g", "cmd", as_bytes(payload)), errc::overloaded);
  grant(z_);
  EXPECT_FALSE(core_->publish("g", "cmd", as_bytes(payload)));
  const auto frames = all_written();
  ASSERT_EQ(frames.size(), 2u);
  // A member that had to wait asks for a larger window: the frames carry `blocked`.
  for (const auto& f : frames) EXPECT_NE(static_cast<int>(f[5]) & wire::flag_blocked, 0);
}

TEST_F(NodeGroups, JoinIsBoundedByTheGroupsLimit) {
  for (std::size_t i = 0; i < limits_options{}.max_groups_per_node; ++i)
    ASSERT_FALSE(core_->join("g" + std::to_string(i)));
  EXPECT_EQ(core_->join("one-more"), errc::overloaded);
  EXPECT_FALSE(core_->join("g0")) << "a group already joined is no new one";
  ASSERT_FALSE(core_->leave("g0"));
  EXPECT_FALSE(core_->join("one-more"));
}

// Joins made before the master's welcome are told right after it; the welcome names the limits.
TEST(NodeGroupsEarly, JoinsBeforeTheWelcomeAreToldAfterIt) {
  using namespace std::chrono_literals;
  asio::io_context io;
  int fds[2] = {-1, -1};
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  node_core::settings s;
  s.role = wire::role::attached;
  s.cluster = "unit";
  auto core = std::make_shared<node_core>(io.get_executor(), s);
  EXPECT_FALSE(core->join("early")) << "before connecting";
  core->connect(
      transport::socket(io, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), fds[0]));
  EXPECT_FALSE(core->join("during-handshake"));
  EXPECT_FALSE(core->join("dropped"));
  EXPECT_FALSE(core->leave("dropped")) << "joined and left before the welcome: nothing to tell";
  EXPECT_EQ(core->publish("early", "cmd", {}), errc::not_connected);

  auto feed = [&](auto encode) {
    std::vector<std::byte> bytes;
    encode(bytes);
    core->on_frame(wire::frame_parser().parse(bytes).frame);
  };
  wire::welcome w;
  w.host = host_id::random();
  w.cluster = "unit";
  w.flow_window = limits::default_flow_window;
  w.flow_budget = 1u << 20;
  w.group_limits = wire::group_limits{3, 1};
  feed([&](auto& out) { wire::append_welcome(out, w); });
  EXPECT_EQ(core->publish("early", "cmd", {}), errc::not_connected) << "registered, not ready";

  io.run_for(20ms);
  std::vector<std::byte> in(1 << 16);
  const ssize_t n = ::recv(fds[1], in.data(), in.size(), MSG_DONTWAIT);
  ASSERT_GT(n, 0);
  std::span<const std::byte> rest(in.data(), static_cast<std::size_t>(n));
  std::vector<wire::group_entry> told;
  for (wire::parse_result r;
       (r = wire::frame_parser().parse(rest)).state == wire::parse_result::status::frame;) {
    if (r.frame.header.type == wire::frame_type::groups_up) {
      std::vector<wire::group_entry> entries;
      bool snapshot = false;
      ASSERT_FALSE(wire::decode_groups_up(r.frame, entries, snapshot));
      told.insert(told.end(), entries.begin(), entries.end());
    }
    rest = rest.subspan(r.frame.bytes.size());
  }
  std::sort(told.begin(), told.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  EXPECT_EQ(told, (std::vector<wire::group_entry>{{core->id(), "during-handshake"},
                                                  {core->id(), "early"}}));

  // The welcome's limits hold from now on: 3 groups, and groups of 1 member.
  EXPECT_FALSE(core->join("third"));
  EXPECT_EQ(core->join("fourth"), errc::overloaded);
  const node_id other = node_id::random();
  const std::vector<wire::node_entry> nodes = {{other, w.host, 9}};
  feed([&](auto& out) { wire::append_nodes_up(out, nodes, true); });
  const std::vector<wire::group_entry> full = {{other, "full"}};
  feed([&](auto& out) { wire::append_groups_up(out, full, true); });
  EXPECT_TRUE(core->ready());
  ASSERT_FALSE(core->leave("third"));
  EXPECT_EQ(core->join("full"), errc::overloaded) << "the group has max_group_members";
  core->stop();
  io.run_for(20ms);
  ::close(fds[1]);
}

}  // namespace
}  // namespace galaxies::detail
