list(APPEND LAYER_SOURCES link.cpp protocol_log.cpp pending_requests.cpp endpoint.cpp socket_setup.cpp local_peer.cpp)
