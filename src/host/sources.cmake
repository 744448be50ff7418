list(APPEND LAYER_SOURCES master.cpp run.cpp)
