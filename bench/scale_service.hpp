// The worker side of `galaxies bench --scale`: each worker tells the driver's observer when its
// own view of the cluster became complete and when it saw a given node leave. The answers carry
// the CLOCK_MONOTONIC time of the event itself (one clock for every process of the machine), so
// that a reply delayed by a busy machine does not delay the figure; and each worker is asked
// once, so that watching a cluster of hundreds of nodes costs it next to nothing.
#pragma once

#include <galaxies/node.hpp>

namespace galaxies::bench {

// observer -> worker: {"others": N}; answered {"complete_ns": T} once the worker knows N other
// nodes (T: when it last came to know N).
inline constexpr const char* cmd_scale_view = "bench.scale.view";
// observer -> worker: {"node": ID}; answered {"left_ns": T} once the worker has seen nodeLeft(ID).
inline constexpr const char* cmd_scale_left = "bench.scale.left";
// observer -> worker: anything; answered {"left": N}, the nodeLefts this worker has seen.
inline constexpr const char* cmd_scale_leaves = "bench.scale.leaves";

// Installs the two handlers and the node events they need on `n`.
void install_scale_service(node& n);

}  // namespace galaxies::bench
