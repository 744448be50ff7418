list(APPEND LAYER_SOURCES uuid.cpp error.cpp backoff.cpp text.cpp host_port.cpp private_directory.cpp
     latency_histogram.cpp wait_status.cpp)
