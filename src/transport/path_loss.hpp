// Loss awareness for a host link (docs/protocol.md §8.3). A segment of the peer's that the path
// loses holds up every byte behind it until TCP retransmits it. A thin stream retransmits every
// ~200 ms (TCP_THIN_LINEAR_TIMEOUTS), but one with four segments or more in flight backs off:
// 0.2, 0.4, 0.8 s. Three losses of one segment in a row, plus the heartbeat's phase, pass the
// default 1.5 s limit: under 5 % loss for a minute, now and then a live link closed
// (network_fault_test: 1 of 3 full-suite runs in one session, 2 of 5 in another).
//
// Silence alone cannot tell that from a hung peer; the connection's own counters add two facts.
// Did the path lose the peer's segments lately (later ones arrived out of order, behind a hole)?
// Does the peer's kernel still answer (its last segment, an ACK of our heartbeats, came during
// the silence)? A silence with both is given up to loss_multiplier x its limit. A dead or
// unreachable host answers nothing and is found at the plain limit, as is a hung peer on a clean
// path; only a hung peer on a lossy path is found later, within the bound. Our own retransmissions
// are no evidence: tail-loss probes retransmit on a clean path whenever the peer's ACKs come late,
// and a stopped peer's kernel delays them (fault_test's frozen master, found at 3 x its limit
// while they counted).
// Pure but for read_tcp_path: fed samples and timestamps, so its tests need no lossy network.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace galaxies::transport {

// A TCP connection's counters, as the kernel shows them (TCP_INFO).
struct tcp_path_sample {
  std::uint64_t retransmitted = 0;  // segments this side retransmitted (logged, not evidence)
  std::uint64_t out_of_order = 0;   // segments received out of order (0 on kernels before 5.4)
  std::chrono::milliseconds since_peer_segment{};  // the peer's last segment, an ACK or data
};

// The counters of the TCP connection `fd`; nullopt when it is no TCP socket (or closed).
std::optional<tcp_path_sample> read_tcp_path(int fd) noexcept;

// Whether the peer's segments were lost lately: fed samples now and then, it remembers the last
// time the count of segments received out of order grew.
class path_loss_memory {
 public:
  using clock = std::chrono::steady_clock;

  // The first sample is the baseline: what came before it is not "lately".
  void note(const tcp_path_sample& sample, clock::time_point now) noexcept;
  bool lossy_within(clock::duration memory, clock::time_point now) const noexcept;

 private:
  std::optional<tcp_path_sample> last_;
  std::optional<clock::time_point> rose_at_;
};

// The limit to judge a silence `silent` long by: `limit` (already stretched otherwise), or up to
// max_multiplier x `base` when the path lost packets lately and the peer's kernel answered during
// the silence (`sample`, read now).
std::chrono::steady_clock::duration forgive_path_loss(std::chrono::steady_clock::duration limit,
                                                      std::chrono::steady_clock::duration base,
                                                      std::chrono::steady_clock::duration silent,
                                                      const tcp_path_sample& sample, bool lossy,
                                                      int max_multiplier) noexcept;

}  // namespace galaxies::transport
