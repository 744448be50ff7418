list(APPEND LAYER_SOURCES route_table.cpp router.cpp router_peers.cpp router_status.cpp)
