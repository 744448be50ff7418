#include "base/wait_status.hpp"

#include <sys/wait.h>

namespace galaxies::base {

std::string describe_wait_status(int wait_status) {
  if (wait_status < 0) return "unknown";
  if (WIFSIGNALED(wait_status)) return "killed by signal " + std::to_string(WTERMSIG(wait_status));
  if (WIFEXITED(wait_status)) return "exit status " + std::to_string(WEXITSTATUS(wait_status));
  return "unknown";
}

}  // namespace galaxies::base
