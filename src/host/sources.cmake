list(APPEND LAYER_SOURCES json_log_formatter.cpp master.cpp polling_loop.cpp run.cpp)
