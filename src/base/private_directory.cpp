#include "base/private_directory.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace galaxies::base {
namespace {

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

std::string parent_of(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool writable_by_group_or_world(mode_t mode) {
  return (mode & (S_IWGRP | S_IWOTH)) != 0;
}

bool owned_by_us_or_root(const struct stat& st) {
  return st.st_uid == ::geteuid() || st.st_uid == 0;
}

std::error_code refuse(std::string& problem, std::string text, std::errc code) {
  problem = std::move(text);
  return std::make_error_code(code);
}

// Who else could rename an entry of `dir`: its owner, if not us or root; anyone with group or
// world write permission, unless the sticky bit limits renames to each entry's owner.
std::error_code check_parent(const std::string& dir, const std::string& child,
                             std::string& problem) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    const int error = errno;
    return refuse(
        problem, "cannot inspect " + dir + ", the parent of " + child + ": " + std::strerror(error),
        static_cast<std::errc>(error));
  }
  const bool others_write = writable_by_group_or_world(st.st_mode) && (st.st_mode & S_ISVTX) == 0;
  if (!owned_by_us_or_root(st) || others_write) {
    return refuse(problem,
                  dir + " (the parent of " + child + ") is owned by uid " +
                      std::to_string(st.st_uid) + " with mode " + mode_text(st.st_mode) +
                      ": others could replace " + child +
                      "; use a parent only you (or root) can write, e.g. set XDG_RUNTIME_DIR "
                      "to your own 0700 directory",
                  std::errc::permission_denied);
  }
  return {};
}

}  // namespace

std::string runtime_directory() {
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && xdg[0] == '/') {
    struct stat st {};
    if (::stat(xdg, &st) == 0 && S_ISDIR(st.st_mode)) return std::string(xdg) + "/galaxies";
  }
  return "/tmp/galaxies-" + std::to_string(::geteuid());
}

std::error_code ensure_private_directory(const std::string& path, std::string& problem) {
  problem.clear();
  if (auto ec = check_parent(parent_of(path), path, problem)) return ec;
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    const int error = errno;
    return refuse(problem, "cannot create " + path + ": " + std::strerror(error),
                  static_cast<std::errc>(error));
  }
  // Opened without following a symbolic link, then judged by what was opened: nothing can swap
  // the path between the look and the verdict.
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    struct stat link {};
    if ((error == ELOOP || error == ENOTDIR) && ::lstat(path.c_str(), &link) == 0) {
      if (S_ISLNK(link.st_mode)) {
        return refuse(problem,
                      path + " is a symbolic link; remove it (rm " + path +
                          ") and galaxies creates a private directory there",
                      std::errc::too_many_symbolic_link_levels);
      }
      return refuse(problem, path + " is not a directory; remove it and galaxies creates one",
                    std::errc::not_a_directory);
    }
    return refuse(problem, "cannot open " + path + ": " + std::strerror(error),
                  static_cast<std::errc>(error));
  }
  struct stat st {};
  const int stat_result = ::fstat(fd, &st);
  const int error = errno;
  ::close(fd);
  if (stat_result != 0) {
    return refuse(problem, "cannot inspect " + path + ": " + std::strerror(error),
                  static_cast<std::errc>(error));
  }
  if (st.st_uid != ::geteuid()) {
    return refuse(problem,
                  path + " is owned by uid " + std::to_string(st.st_uid) + ", not by us (uid " +
                      std::to_string(::geteuid()) + "): whoever owns it can take our socket; " +
                      "remove it (as its owner or root), or set XDG_RUNTIME_DIR to a directory " +
                      "of your own",
                  std::errc::permission_denied);
  }
  if (writable_by_group_or_world(st.st_mode)) {
    return refuse(problem,
                  path + " has mode " + mode_text(st.st_mode) +
                      ": other users could replace our socket; fix it with: chmod 700 " + path,
                  std::errc::permission_denied);
  }
  return {};
}

std::error_code check_chosen_directory(const std::string& path, std::string& problem) {
  problem.clear();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int error = errno;
    return refuse(problem, "cannot use directory " + path + ": " + std::strerror(error),
                  static_cast<std::errc>(error));
  }
  if (!S_ISDIR(st.st_mode)) {
    return refuse(problem, path + " is not a directory", std::errc::not_a_directory);
  }
  if (writable_by_group_or_world(st.st_mode) && (st.st_mode & S_ISVTX) == 0) {
    return refuse(problem,
                  path + " has mode " + mode_text(st.st_mode) +
                      ": other users could replace the socket in it; use a directory only you " +
                      "can write (chmod 700 " + path + "), or one with the sticky bit",
                  std::errc::permission_denied);
  }
  if (!owned_by_us_or_root(st)) {
    problem = path + " is owned by uid " + std::to_string(st.st_uid) +
              ", who can replace the socket in it";
  }
  return {};
}

}  // namespace galaxies::base
