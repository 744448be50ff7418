// `--limit NAME=VALUE`: any field of galaxies::limits_options by its name, so that every bound can
// be set (and tested) without a flag of its own.
#pragma once

#include <string>
#include <string_view>

#include "galaxies/options.hpp"

namespace galaxies::cli {

// Sets one limit from "NAME=VALUE" (a decimal integer; milliseconds for write_stall). Throws
// std::invalid_argument naming the known limits when the name or value is wrong.
void apply_limit(limits_options& limits, std::string_view assignment);

// "name (default N), ...": for --help.
std::string describe_limits();

}  // namespace galaxies::cli
