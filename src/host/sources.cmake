list(APPEND LAYER_SOURCES json_log_formatter.cpp master.cpp polling_loop.cpp registry_factory.cpp process_stats.cpp run.cpp)
