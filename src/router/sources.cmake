list(APPEND LAYER_SOURCES route_table.cpp request_ledger.cpp router.cpp router_forward.cpp
     router_handshake.cpp router_peers.cpp router_status.cpp
     membership_log.cpp group_table.cpp router_groups.cpp)
