list(APPEND LAYER_SOURCES backends.cpp file_registry.cpp file_store.cpp directory_watch.cpp
     row_json.cpp row_checks.cpp skipped_rows.cpp offloaded_registry.cpp store_backend.cpp)
# A backend left out of the build (root CMakeLists.txt: GALAXIES_WITH_REDIS, GALAXIES_WITH_ETCD)
# is replaced by its refusal (absent/), so a URL of its scheme fails at start-up, saying why.
if(GALAXIES_WITH_REDIS)
  list(APPEND LAYER_SOURCES redis/hiredis_asio.cpp redis/redis_connection.cpp
       redis/redis_layout.cpp redis/redis_registry.cpp redis/redis_reply.cpp redis/redis_scan.cpp
       redis/redis_url.cpp)
else()
  list(APPEND LAYER_SOURCES absent/without_redis.cpp)
endif()
if(GALAXIES_WITH_ETCD)
  list(APPEND LAYER_SOURCES etcd/etcd_client.cpp etcd/etcd_codec.cpp etcd/etcd_endpoints.cpp
       etcd/etcd_registry.cpp http/curl_library.cpp http/curl_multi.cpp)
else()
  list(APPEND LAYER_SOURCES absent/without_etcd.cpp)
endif()
