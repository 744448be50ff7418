list(APPEND LAYER_SOURCES node_core.cpp node_groups.cpp pending_requests.cpp node.cpp
     flow_credit.cpp)
