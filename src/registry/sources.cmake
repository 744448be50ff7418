list(APPEND LAYER_SOURCES registry.cpp file_registry.cpp file_store.cpp row_json.cpp)
