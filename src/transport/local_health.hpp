// Local health awareness, after Lifeguard (HashiCorp memberlist's awareness.go): before a
// process declares a silent peer gone, it asks whether it is itself the slow one. Its evidence is
// how late its own heartbeat ticks fire: on a saturated machine a process waits for a core, its
// timers run late, and its peers (on the same cores) send late too. While the recent lateness is
// high, every silence limit is stretched by it, within a bound, so that a machine that is merely
// busy never makes galaxies kill its workers or declare its peers gone, and a peer that is really
// dead is still found within local_health_max_multiplier times the configured limit.
// Pure: fed timestamps, never reads a clock, so its tests need no sleep.
// Threading: not synchronised; one event loop (all links of a process may share one).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>

#include "base/limits.hpp"
#include "base/log_throttle.hpp"
#include "transport/path_loss.hpp"

namespace galaxies::transport {

struct local_health_settings {
  // Those of a heartbeat configuration (its max_stretch), the rest the limits' defaults.
  static local_health_settings bounded_by(int max_multiplier) noexcept {
    local_health_settings s;
    s.max_multiplier = max_multiplier;
    constexpr int factor = limits::local_health_cpu_wait_factor;
    s.max_cpu_wait_multiplier = max_multiplier <= 1 ? 1
                                : max_multiplier > std::numeric_limits<int>::max() / factor
                                    ? std::numeric_limits<int>::max()
                                    : max_multiplier * factor;
    s.max_loss_multiplier = std::min(limits::path_loss_multiplier, max_multiplier);
    return s;
  }
  std::chrono::steady_clock::duration tolerance = limits::local_health_tolerance;
  int stretch_factor = limits::local_health_stretch_factor;
  int max_multiplier = limits::local_health_max_multiplier;
  // The bound of forgive_cpu_wait (limits::local_health_cpu_wait_factor).
  int max_cpu_wait_multiplier =
      limits::local_health_max_multiplier * limits::local_health_cpu_wait_factor;
  // The bound of forgive_path_loss (limits::path_loss_multiplier, within max_multiplier).
  int max_loss_multiplier = limits::path_loss_multiplier;
  std::chrono::steady_clock::duration half_life = limits::local_health_half_life;
};

// `limit` (that of a silence or a deadline whose normal length is `base`) lengthened by `waited`,
// the time the party it waits for spent waiting for a core meanwhile (a process of this machine:
// process::cpu_wait), at most max_multiplier x base. A process starved of CPU is late, not gone;
// a stuck one (deadlocked, blocked, stopped) waits for no core.
std::chrono::steady_clock::duration forgive_cpu_wait(std::chrono::steady_clock::duration limit,
                                                     std::chrono::steady_clock::duration base,
                                                     std::chrono::steady_clock::duration waited,
                                                     int max_multiplier) noexcept;

// The worst of recent samples, halving every half-life since it was seen: one long stall is
// remembered for a few seconds, and a loop punctual again soon counts as punctual.
class decaying_peak {
 public:
  using clock = std::chrono::steady_clock;

  void note(clock::duration sample, clock::time_point now, clock::duration half_life) noexcept;
  clock::duration value(clock::time_point now, clock::duration half_life) const noexcept;

 private:
  clock::duration peak_{};
  clock::time_point peak_at_{};
};

struct local_health_counters {
  std::uint64_t late_ticks = 0;  // ticks later than the tolerance
  std::uint64_t stretched = 0;   // silences past a limit forgiven for a while (once per silence)
  std::uint64_t loss_stretched = 0;  // of those, host links' because the path loses packets
  // Deadlines (handshakes) that waited longer for a peer of this machine starved of CPU.
  std::uint64_t deadlines_stretched = 0;
  std::chrono::steady_clock::duration worst{};  // the latest tick seen
};

class local_health {
 public:
  using clock = std::chrono::steady_clock;

  explicit local_health(local_health_settings settings = {}) noexcept
      : settings_(settings), log_(limits::local_health_log_interval) {}

  // A timer due at `due` ran at `now`: one sample of this loop's lateness.
  void timer_fired(clock::time_point due, clock::time_point now) noexcept;

  // The recent lateness beyond the tolerance: the worst sample, halved every half-life since.
  clock::duration excess_lateness(clock::time_point now) const noexcept;

  // What a peer said of its own loop (its heartbeats' lateness, protocol.md §8.1), decayed as
  // ours is: a peer starved of CPU is silent because it is late, not because it is gone.
  clock::duration peer_excess(const decaying_peak& peer, clock::time_point now) const noexcept {
    return peer.value(now, settings_.half_life);
  }
  void note_peer(decaying_peak& peer, clock::duration reported,
                 clock::time_point now) const noexcept {
    peer.note(reported, now, settings_.half_life);
  }

  // The silence limit to judge by at `now` instead of `base`: base + stretch_factor x the larger
  // of our excess lateness and the peer's reported one, at most max_multiplier x base.
  clock::duration silence_limit(clock::duration base, clock::time_point now,
                                clock::duration peer_excess = {}) const noexcept;

  // transport::forgive_cpu_wait within this process's max_cpu_wait_multiplier.
  clock::duration forgive_cpu_wait(clock::duration limit, clock::duration base,
                                   clock::duration waited) const noexcept {
    return transport::forgive_cpu_wait(limit, base, waited, settings_.max_cpu_wait_multiplier);
  }

  // transport::forgive_path_loss within this process's max_loss_multiplier.
  clock::duration forgive_path_loss(clock::duration limit, clock::duration base,
                                    clock::duration silent, const tcp_path_sample& sample,
                                    bool lossy) const noexcept {
    return transport::forgive_path_loss(limit, base, silent, sample, lossy,
                                        settings_.max_loss_multiplier);
  }

  // A deadline was stretched by forgive_cpu_wait (counted).
  void note_deadline_stretched() noexcept { ++counters_.deadlines_stretched; }

  // How far apart to send heartbeats to a peer that reads our lateness, when what our heartbeats
  // last told it, decayed as its copy is, comes to `told`: `base` while that is under 2 x base;
  // beyond, 1 + told / (2 x base) whole multiples of it (so they stay on the machine-wide grid),
  // at most half the peer's max_stretch (`peer_stretch`) and our own max_multiplier. A starved
  // process thus wakes itself and its peers less often, and the peer, whose limit grows by
  // stretch_factor x told, still waits several spacings before it judges (protocol.md §8.1).
  clock::duration heartbeat_spacing(clock::duration base, clock::duration told,
                                    std::uint32_t peer_stretch) const noexcept;

  // A silence past its base limit was forgiven because of the stretch; true when it may be
  // logged now (`suppressed`: how many such were not logged since the last line).
  bool note_stretched(clock::time_point now, std::uint64_t& suppressed) noexcept;
  // That stretch was forgive_path_loss's (counted besides).
  void note_loss_stretched() noexcept { ++counters_.loss_stretched; }

  const local_health_counters& counters() const noexcept { return counters_; }

 private:
  local_health_settings settings_;
  local_health_counters counters_;
  decaying_peak excess_;  // lateness beyond the tolerance
  base::log_throttle log_;
};

}  // namespace galaxies::transport
