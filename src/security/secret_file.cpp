#include "security/secret_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "base/text.hpp"

namespace galaxies::security {
namespace {

std::runtime_error bad(const std::string& path, const std::string& why) {
  return std::runtime_error("cluster secret file '" + base::printable(path, 200) + "': " + why);
}

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

}  // namespace

std::string load_secret_file(const std::string& path) {
  // O_NONBLOCK: a FIFO planted at the path must not hang start-up; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw bad(path, std::strerror(errno));
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_on_return{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw bad(path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw bad(path, "not a regular file");
  if (st.st_uid != ::geteuid() && st.st_uid != 0)
    throw bad(path, "owned by uid " + std::to_string(st.st_uid) + ", not by this user (uid " +
                        std::to_string(::geteuid()) + ") or root");
  if ((st.st_mode & 077) != 0)
    throw bad(path, "mode " + octal_mode(st.st_mode) +
                        " lets other users read or change it; run: chmod 600 '" +
                        base::printable(path, 200) + "'");
  if (static_cast<std::size_t>(st.st_size) > max_secret_size + 1)
    throw bad(path, "larger than " + std::to_string(max_secret_size) + " bytes");

  std::string secret(max_secret_size + 2, '\0');
  std::size_t filled = 0;
  while (filled < secret.size()) {
    const ssize_t n = ::read(fd, secret.data() + filled, secret.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw bad(path, std::strerror(errno));
    if (n == 0) break;
    filled += static_cast<std::size_t>(n);
  }
  secret.resize(filled);
  // Files written by `echo` or an editor end with a newline nobody means as part of the secret.
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  if (secret.size() > max_secret_size)
    throw bad(path, "larger than " + std::to_string(max_secret_size) + " bytes");
  if (secret.size() < min_secret_size)
    throw bad(path, "shorter than " + std::to_string(min_secret_size) +
                        " bytes; make one with: head -c 32 /dev/urandom | base64 > FILE");
  return secret;
}

}  // namespace galaxies::security
