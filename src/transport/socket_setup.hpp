// Socket set-up every connection needs. Asio opens sockets without close-on-exec, and the master
// fork+execs workers: without this, every worker would inherit every link of its master.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <system_error>

namespace galaxies::transport {

void set_cloexec(int fd);

// For host links: no Nagle delay, and linear (not exponential) retransmission timeouts while
// few segments are in flight (TCP_THIN_LINEAR_TIMEOUTS). A heartbeat lost to packet loss is then
// retried every ~200 ms instead of after 0.2, 0.6, 1.4 s, so loss alone does not look like death.
// And TCP_NOTSENT_LOWAT: the kernel holds at most host_link_notsent_lowat bytes not yet sent.
inline constexpr std::size_t host_link_notsent_lowat = 128 * 1024;
void tune_host_link(int fd);

// The kernel's smoothed round-trip time of a TCP connection (TCP_INFO), or none for another kind
// of socket: what a host link's bytes take to be acknowledged, without a probe of our own.
std::optional<std::chrono::microseconds> tcp_round_trip(int fd) noexcept;

}  // namespace galaxies::transport
