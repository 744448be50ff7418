list(APPEND LAYER_SOURCES frame_parser.cpp message.cpp message_batch.cpp handshake.cpp membership.cpp control.cpp credit.cpp groups.cpp)
