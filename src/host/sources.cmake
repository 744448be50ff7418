list(APPEND LAYER_SOURCES master.cpp polling_loop.cpp run.cpp)
