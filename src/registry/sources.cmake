list(APPEND LAYER_SOURCES file_registry.cpp file_store.cpp directory_watch.cpp row_json.cpp
     row_checks.cpp skipped_rows.cpp offloaded_registry.cpp)
list(APPEND LAYER_SOURCES redis/hiredis_asio.cpp redis/redis_connection.cpp redis/redis_layout.cpp
     redis/redis_registry.cpp redis/redis_reply.cpp redis/redis_scan.cpp redis/redis_url.cpp)
list(APPEND LAYER_SOURCES etcd/etcd_client.cpp etcd/etcd_codec.cpp etcd/etcd_endpoints.cpp
     etcd/etcd_registry.cpp http/curl_library.cpp http/curl_multi.cpp)
