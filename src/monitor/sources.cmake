list(APPEND LAYER_SOURCES metrics_text.cpp render_metrics.cpp snapshot_board.cpp http_service.cpp)
