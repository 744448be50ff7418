// The registry stores the integration tests start: the project's one launcher of etcd and
// redis-server (tools/store_server, which the demo uses too), under the tests' names, and the
// relay that cuts one client off from a store.
#pragma once

#include "store_server/store_server.hpp"
#include "support/loopback_proxy.hpp"

namespace galaxies::test {

using stores::etcd_server;
using stores::find_on_path;
using stores::free_loopback_port;
using stores::redis_server;
using stores::store_server;
using stores::store_settings;

}  // namespace galaxies::test
