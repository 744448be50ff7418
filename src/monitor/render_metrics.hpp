// A master's /metrics: its status document (router::status() with what the host adds: workers,
// registry, process) in the Prometheus text format. docs/operating.md lists every family.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace galaxies::monitor {

std::string render_metrics(const nlohmann::json& status);

}  // namespace galaxies::monitor
