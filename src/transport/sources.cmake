list(APPEND LAYER_SOURCES link.cpp protocol_log.cpp pending_requests.cpp backoff.cpp endpoint.cpp socket_setup.cpp stream.cpp
     connector.cpp)
