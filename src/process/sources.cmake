list(APPEND LAYER_SOURCES spawn.cpp self_executable.cpp restart_policy.cpp supervisor.cpp
     cpu_wait.cpp proc_stat.cpp proc_tasks.cpp fork_server.cpp)
