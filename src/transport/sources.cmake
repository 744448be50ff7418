list(APPEND LAYER_SOURCES link.cpp fair_lanes.cpp protocol_log.cpp endpoint.cpp socket_setup.cpp stream.cpp
     connector.cpp local_peer.cpp local_health.cpp path_loss.cpp)
list(APPEND LAYER_SOURCES write_batch.cpp shm_ring.cpp shm_channel.cpp)
