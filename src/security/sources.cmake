list(APPEND LAYER_SOURCES hmac.cpp secret_file.cpp peer_auth.cpp tls_context.cpp)
