// Who a galaxies process logs through (README, "Logging"): the application's own spdlog default
// logger when it installed one, else options::log_sink, else stderr as text or JSON.
// Threading: call once per process, before its loop runs and before anything logs from a thread.
#pragma once

#include "galaxies/options.hpp"

namespace galaxies::host {

// Throws std::invalid_argument for a log_format or log_level galaxies does not know.
void configure_logging(const options& opts, const char* role);

// Whether log_format asks for JSON (and is valid: else std::invalid_argument).
bool logs_json(const options& opts);

}  // namespace galaxies::host
