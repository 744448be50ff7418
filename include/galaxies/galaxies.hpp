// Everything an application needs.
#pragma once

#include "galaxies/error.hpp"
#include "galaxies/ids.hpp"
#include "galaxies/log.hpp"
#include "galaxies/node.hpp"
#include "galaxies/options.hpp"
#include "galaxies/run.hpp"
