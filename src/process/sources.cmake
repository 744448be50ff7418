list(APPEND LAYER_SOURCES spawn.cpp restart_policy.cpp supervisor.cpp)
