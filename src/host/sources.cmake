list(APPEND LAYER_SOURCES master.cpp polling_loop.cpp process_stats.cpp run.cpp)
