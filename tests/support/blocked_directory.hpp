// A file registry's directory made unwritable in a way that root cannot ignore (the tests run as
// root, which permission bits do not stop): the directory is moved aside and a regular file, or
// a symbolic link to one, takes its path. release() puts the directory back, contents and all.
#pragma once

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
    if (::rename(dir_.c_str(), aside_.c_str()) == 0) {
      moved_ = true;
    } else if (errno != ENOENT) {
      throw std::system_error(errno, std::system_category(), "move aside " + dir_);
    }
    if (with == kind::file) {
      std::ofstream(dir_) << "not a directory\n";
    } else {
      std::ofstream(target_) << "not a directory\n";
      if (::symlink(target_.c_str(), dir_.c_str()) != 0)
        throw std::system_error(errno, std::system_category(), "symlink " + dir_);
    }
  }
  ~blocked_directory() { release(); }

  blocked_directory(const blocked_directory&) = delete;
  blocked_directory& operator=(const blocked_directory&) = delete;

  void release() {
    if (released_) return;
    released_ = true;
    ::unlink(dir_.c_str());
    ::unlink(target_.c_str());
    if (moved_) ::rename(aside_.c_str(), dir_.c_str());
  }

 private:
  std::string dir_;
  std::string aside_;
  std::string target_;
  bool moved_ = false;
  bool released_ = false;
};

}  // namespace galaxies::test
