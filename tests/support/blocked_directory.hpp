// A file registry's directory made unwritable in a way that root cannot ignore (the tests run as
// root, which permission bits do not stop): a regular file, or a symbolic link to one, takes the
// directory's path, and the directory waits beside it. release() puts the directory back, contents
// and all. Each swap is one renameat2(RENAME_EXCHANGE): registries run on threads of their own
// and recreate a missing directory at once, so the path must never be missing in between.
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace galaxies::test {

class blocked_directory {
 public:
  enum class kind { file, symlink };

  explicit blocked_directory(std::string dir, kind with = kind::file)
      : dir_(std::move(dir)), aside_(dir_ + ".aside"), target_(dir_ + ".target") {
    if (with == kind::file) {
      std::ofstream(aside_) << "not a directory\n";
    } else {
      std::ofstream(target_) << "not a directory\n";
      if (::symlink(target_.c_str(), aside_.c_str()) != 0)
        throw std::system_error(errno, std::system_category(), "symlink " + aside_);
    }
    // The directory exists (swap it aside), or does not yet (put the blocker in its place, unless
    // a registry has just created it: then swap).
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (exchange(aside_, dir_)) {
        moved_ = true;
        return;
      }
      if (errno != ENOENT) throw std::system_error(errno, std::system_category(), "swap " + dir_);
      if (::renameat2(AT_FDCWD, aside_.c_str(), AT_FDCWD, dir_.c_str(), RENAME_NOREPLACE) == 0)
        return;
      if (errno != EEXIST) throw std::system_error(errno, std::system_category(), "block " + dir_);
    }
    throw std::runtime_error("could not block " + dir_);
  }
  ~blocked_directory() { release(); }

  blocked_directory(const blocked_directory&) = delete;
  blocked_directory& operator=(const blocked_directory&) = delete;

  void release() {
    if (released_) return;
    released_ = true;
    if (moved_) {
      exchange(aside_, dir_);
      ::unlink(aside_.c_str());
    } else {
      ::unlink(dir_.c_str());
    }
    ::unlink(target_.c_str());
  }

 private:
  static bool exchange(const std::string& a, const std::string& b) {
    return ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0;
  }

  std::string dir_;
  std::string aside_;
  std::string target_;
  bool moved_ = false;
  bool released_ = false;
};

}  // namespace galaxies::test
