#include "transport/path_loss.hpp"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <limits>

namespace galaxies::transport {

std::optional<tcp_path_sample> read_tcp_path(int fd) noexcept {
  tcp_info info{};
  socklen_t size = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return std::nullopt;
  // An older kernel fills a shorter struct: what it does not know stays zero.
  if (size < offsetof(tcp_info, tcpi_total_retrans) + sizeof info.tcpi_total_retrans)
    return std::nullopt;
  tcp_path_sample sample;
  sample.retransmitted = info.tcpi_total_retrans;
  if (size >= offsetof(tcp_info, tcpi_rcv_ooopack) + sizeof info.tcpi_rcv_ooopack)
    sample.out_of_order = info.tcpi_rcv_ooopack;
  sample.since_peer_segment = std::chrono::milliseconds(info.tcpi_last_ack_recv);
  return sample;
}

void path_loss_memory::note(const tcp_path_sample& sample, clock::time_point now) noexcept {
  if (last_ && sample.out_of_order > last_->out_of_order) rose_at_ = now;
  last_ = sample;
}

bool path_loss_memory::lossy_within(clock::duration memory, clock::time_point now) const noexcept {
  return rose_at_ && now - *rose_at_ <= memory;
}

std::chrono::steady_clock::duration forgive_path_loss(std::chrono::steady_clock::duration limit,
                                                      std::chrono::steady_clock::duration base,
                                                      std::chrono::steady_clock::duration silent,
                                                      const tcp_path_sample& sample, bool lossy,
                                                      int max_multiplier) noexcept {
  if (!lossy || max_multiplier <= 1 || sample.since_peer_segment >= silent) return limit;
  using duration = std::chrono::steady_clock::duration;
  const auto most = base.count() > std::numeric_limits<duration::rep>::max() / max_multiplier
                        ? duration::max()
                        : base * max_multiplier;
  return std::max(limit, most);
}

}  // namespace galaxies::transport
