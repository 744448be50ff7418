// Loss awareness (transport/path_loss.hpp): when a host link's silence is put down to a lossy
// path, fed samples and timestamps; and the kernel's counters read off real sockets.
#include "transport/path_loss.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>

#include "base/unique_fd.hpp"
#include "transport/local_health.hpp"

namespace galaxies::transport {
namespace {

using namespace std::chrono_literals;
using clock = path_loss_memory::clock;

const clock::time_point t0 = clock::time_point{} + 1000s;
constexpr auto base = 1500ms;
constexpr auto memory = 30s;

tcp_path_sample counts(std::uint64_t retransmitted, std::uint64_t out_of_order,
                       std::chrono::milliseconds since_peer_segment = 100ms) {
  return {.retransmitted = retransmitted,
          .out_of_order = out_of_order,
          .since_peer_segment = since_peer_segment};
}

TEST(path_loss_memory, the_first_sample_is_a_baseline_not_a_loss) {
  path_loss_memory m;
  EXPECT_FALSE(m.lossy_within(memory, t0));
  m.note(counts(40, 7), t0);
  EXPECT_FALSE(m.lossy_within(memory, t0)) << "losses before the first sample are not recent";
  m.note(counts(40, 7), t0 + 5s);
  EXPECT_FALSE(m.lossy_within(memory, t0 + 5s)) << "counters that did not move show no loss";
}

TEST(path_loss_memory, a_segment_received_out_of_order_is_remembered_for_a_while) {
  path_loss_memory m;
  m.note(counts(0, 0), t0);
  m.note(counts(0, 1), t0 + 5s);
  EXPECT_TRUE(m.lossy_within(memory, t0 + 5s));
  EXPECT_TRUE(m.lossy_within(memory, t0 + 35s));
  m.note(counts(0, 1), t0 + 10s);
  EXPECT_TRUE(m.lossy_within(memory, t0 + 35s)) << "a sample without news forgets nothing";
  EXPECT_FALSE(m.lossy_within(memory, t0 + 35s + 1ms)) << "remembered no longer than `memory`";
}

TEST(path_loss_memory, retransmissions_of_our_own_are_no_evidence) {
  // Tail-loss probes retransmit on a clean path whenever the peer's ACKs come late.
  path_loss_memory m;
  m.note(counts(0, 0), t0);
  m.note(counts(5, 0), t0 + 5s);
  EXPECT_FALSE(m.lossy_within(memory, t0 + 5s));
}

TEST(forgive_path_loss, a_lossy_path_whose_peer_kernel_answers_gets_the_bound) {
  const auto silent = 1600ms;
  EXPECT_EQ(forgive_path_loss(base, base, silent, counts(9, 2, 120ms), true, 3), 3 * base);
  EXPECT_EQ(forgive_path_loss(6 * base, base, silent, counts(9, 2, 120ms), true, 3), 6 * base)
      << "a limit already longer (a late loop) is kept";
}

TEST(forgive_path_loss, a_clean_path_a_silent_kernel_or_no_bound_leave_the_limit_alone) {
  const auto silent = 1600ms;
  EXPECT_EQ(forgive_path_loss(base, base, silent, counts(9, 2, 120ms), false, 3), base)
      << "a hung peer on a clean path is found at the plain limit";
  EXPECT_EQ(forgive_path_loss(base, base, silent, counts(9, 2, 1600ms), true, 3), base)
      << "a host whose kernel answered nothing during the silence is gone or cut off";
  EXPECT_EQ(forgive_path_loss(base, base, silent, counts(9, 2, 120ms), true, 1), base)
      << "max_stretch 1 asks for the plain limit";
}

TEST(forgive_path_loss, local_health_bounds_it_by_its_max_stretch) {
  const auto lossy = counts(9, 2, 10ms);
  EXPECT_EQ(local_health(local_health_settings::bounded_by(8))
                .forgive_path_loss(base, base, 2s, lossy, true),
            3 * base);
  EXPECT_EQ(local_health(local_health_settings::bounded_by(2))
                .forgive_path_loss(base, base, 2s, lossy, true),
            2 * base);
  EXPECT_EQ(local_health(local_health_settings::bounded_by(1))
                .forgive_path_loss(base, base, 2s, lossy, true),
            base);
}

// ---- the kernel's counters ----

struct tcp_pair {
  base::unique_fd client, server;
};

tcp_pair connected_on_loopback() {
  base::unique_fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  if (!listener || ::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), size) != 0 ||
      ::listen(listener.get(), 1) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &size) != 0)
    return {};
  base::unique_fd client(::socket(AF_INET, SOCK_STREAM, 0));
  if (!client || ::connect(client.get(), reinterpret_cast<sockaddr*>(&address), size) != 0)
    return {};
  return {std::move(client), base::unique_fd(::accept(listener.get(), nullptr, nullptr))};
}

TEST(read_tcp_path, reads_a_connected_tcp_socket) {
  auto pair = connected_on_loopback();
  ASSERT_TRUE(pair.client && pair.server);
  std::array<char, 4> bytes{'p', 'i', 'n', 'g'};
  ASSERT_EQ(::write(pair.server.get(), bytes.data(), bytes.size()), 4);
  ASSERT_EQ(::read(pair.client.get(), bytes.data(), bytes.size()), 4);
  const auto sample = read_tcp_path(pair.client.get());
  ASSERT_TRUE(sample);
  EXPECT_EQ(sample->retransmitted, 0u) << "loopback loses nothing";
  EXPECT_EQ(sample->out_of_order, 0u);
  EXPECT_LT(sample->since_peer_segment, 60s) << "the peer's data just came";
}

TEST(read_tcp_path, knows_no_counters_for_other_sockets) {
  std::array<int, 2> fds{};
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds.data()), 0);
  const base::unique_fd a(fds[0]), b(fds[1]);
  EXPECT_FALSE(read_tcp_path(a.get()));
  EXPECT_FALSE(read_tcp_path(-1));
}

}  // namespace
}  // namespace galaxies::transport
