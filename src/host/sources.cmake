list(APPEND LAYER_SOURCES async_fd_sink.cpp attach.cpp json_log_formatter.cpp log_setup.cpp
     master.cpp polling_loop.cpp process_stats.cpp registry_factory.cpp run.cpp)
