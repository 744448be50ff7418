// What a node counts about its own traffic, as plain data for the application to publish (to
// Prometheus, logs, its own status page). Values are copies: they do not change after they are
// returned. Threading: plain values, safe to use anywhere once obtained; they are obtained from a
// node on its executor (node::counters(), node::peer_counters()).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "galaxies/ids.hpp"

namespace galaxies {

// Round-trip times in fixed buckets, shaped like a Prometheus histogram so that it can be exported
// as one without conversion: bounds() are the `le` labels, counts() the cumulative bucket values,
// sum and count the `_sum` and `_count` series. Fixed bounds (rather than configurable ones) keep
// recording allocation-free and let histograms from every node be added together.
struct latency_histogram {
  static constexpr std::size_t bucket_count = 18;

  // Upper bounds in seconds, ascending; the last is +Inf.
  static const std::array<double, bucket_count>& bounds() noexcept;

  // Observations in each bucket alone: in_bucket[i] counts those in (bounds()[i-1], bounds()[i]].
  // Kept per bucket so that recording touches one element; counts() gives the cumulative view.
  std::array<std::uint64_t, bucket_count> in_bucket{};
  std::uint64_t count = 0;
  std::chrono::nanoseconds sum{0};

  // Cumulative, as Prometheus buckets are: counts()[i] observations were <= bounds()[i], and
  // counts().back() == count.
  std::array<std::uint64_t, bucket_count> counts() const noexcept;

  // An estimate of quantile q (0 <= q <= 1) in seconds, as Prometheus' histogram_quantile() makes
  // it: linear interpolation within the bucket the rank falls in, the first bucket starting at 0.
  // A rank in the +Inf bucket gives the largest finite bound; q = 0 gives the lower edge of the
  // first non-empty bucket. NaN when the histogram is empty or q is NaN; -Inf below 0, +Inf
  // above 1.
  double quantile(double q) const noexcept;

  // Adds one round trip of `rtt` (a negative one counts as 0).
  void observe(std::chrono::nanoseconds rtt) noexcept;
};

// Requests that ended without a reply from their target, by the error they completed with. A reply
// from the target, even an error (no_handler, handler_failed, or the application's own), is a
// completed request and goes to the latency histogram instead.
struct request_failures {
  std::uint64_t timeout = 0;
  std::uint64_t node_left = 0;     // the target left first
  std::uint64_t no_such_node = 0;  // unknown here, or to a master on the way
  std::uint64_t overloaded = 0;    // too many in flight here, or a full queue on the way
  std::uint64_t too_large = 0;
  std::uint64_t not_connected = 0;  // this node had no master, or lost it meanwhile
  std::uint64_t shutting_down = 0;  // this node stopped with the request pending
  std::uint64_t cancelled = 0;      // by its handler's cancellation slot (operation_aborted)
  std::uint64_t other = 0;          // refused at the call for any other reason (an empty command)

  std::uint64_t total() const noexcept {
    return timeout + node_left + no_such_node + overloaded + too_large + not_connected +
           shutting_down + cancelled + other;
  }
};

// A node's figures since it started. node::counters() returns a copy.
struct node_counters {
  // Messages appended to the channel: sends, requests, replies; a broadcast counts once.
  std::uint64_t sent = 0;
  // Messages delivered here: sends, requests, replies, broadcasts (a batch counts its messages).
  std::uint64_t received = 0;
  std::uint64_t late_replies = 0;  // replies that arrived after their request ended
  std::uint64_t unhandled = 0;     // sends/broadcasts with no handler for their command

  latency_histogram request_latency;  // requests answered by their target, by round trip
  request_failures failed_requests;   // requests that ended without such an answer
};

// Traffic with one other node, from this node's side. Payload bytes only: command names and frame
// headers are not counted, so the figures mean the same whatever batching did on the way.
struct peer_traffic {
  node_id node;
  std::uint64_t messages_sent = 0;  // sends, requests, replies; each broadcast once per receiver
  std::uint64_t messages_received = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t requests_sent = 0;     // of messages_sent
  std::uint64_t replies_received = 0;  // of messages_received (a master's answer for it is not)
};

}  // namespace galaxies
