#include "registry/file_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <nlohmann/json.hpp>

#include "registry/row_json.hpp"

namespace galaxies::registry::file_store {
namespace {

using json = nlohmann::json;

constexpr std::string_view suffix = ".json";

std::error_code last_error() {
  return {errno, std::system_category()};
}

// Owns one fd; every fd here is O_CLOEXEC because workers are fork+exec'd from this process.
class file_descriptor {
 public:
  explicit file_descriptor(int fd) : fd_(fd) {}
  file_descriptor(const file_descriptor&) = delete;
  file_descriptor& operator=(const file_descriptor&) = delete;
  ~file_descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_;
};

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// ".UUID.json.tmp.PID", for any host and pid.
bool is_temp_name(std::string_view name) {
  if (!name.starts_with('.')) return false;
  const auto tmp = name.find(".tmp.", 1);
  if (tmp == std::string_view::npos || !id_of(name.substr(1, tmp - 1))) return false;
  const auto pid = name.substr(tmp + 5);
  return !pid.empty() && pid.size() <= 10 &&
         std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string path_of(const std::string& dir, const host_id& id) {
  return dir + "/" + file_name(id);
}

// Reads at most `limit` + 1 bytes: one more than allowed is enough to know the file is too large.
std::error_code read_bounded(int fd, std::string& text, std::size_t limit) {
  char buf[4096];
  while (text.size() <= limit) {
    const ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit + 1 - text.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  return {};
}

std::error_code write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string file_name(const host_id& id) {
  return id.to_string() + std::string(suffix);
}

std::string temp_file_name(const host_id& id) {
  return "." + file_name(id) + ".tmp." + std::to_string(::getpid());
}

std::optional<host_id> id_of(std::string_view name) {
  if (!name.ends_with(suffix)) return std::nullopt;
  const auto text = name.substr(0, name.size() - suffix.size());
  const auto id = host_id::parse(text);
  // The canonical spelling only: one host, one file name.
  if (!id || id->is_nil() || id->to_string() != text) return std::nullopt;
  return id;
}

std::string serialize(const host_record& row) {
  json value = row_to_json(row, expiry_field::required);
  value["format"] = format_version;
  // Indented: people read these files when debugging discovery. Invalid UTF-8 (a hostname, a
  // path) is replaced rather than thrown: a write must never take down the event loop.
  return value.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::error_code parse(std::string_view text, host_record& row) {
  if (text.size() > max_row_file_size) return row_error::not_json;
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return row_error::not_json;
  if (!doc.is_object()) return row_error::not_an_object;
  const auto format = doc.find("format");
  if (format == doc.end() || !format->is_number_integer() ||
      format->get<std::int64_t>() != format_version)
    return row_error::bad_format;
  return parse_row(doc, row, expiry_field::required);
}

row_file load_row(const std::string& dir, const host_id& id) {
  row_file result;
  // O_NONBLOCK: a FIFO planted under a row file's name must not hang the loop; O_NOFOLLOW: a row
  // file is only ever made by rename(), never a link.
  file_descriptor fd(
      ::open(path_of(dir, id).c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno == ELOOP) {
      result.skipped = row_error::not_a_file;
    } else if (errno != ENOENT) {
      result.error = last_error();
    }
    return result;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    result.error = last_error();
    return result;
  }
  if (!S_ISREG(st.st_mode)) {
    result.skipped = row_error::not_a_file;
    return result;
  }
  // Judged by its size before a byte is read: a huge file costs nothing.
  if (static_cast<std::uint64_t>(st.st_size) > max_row_file_size) {
    result.skipped = row_error::not_json;
    return result;
  }
  std::string text;
  if (auto ec = read_bounded(fd.get(), text, max_row_file_size)) {
    result.error = ec;
    return result;
  }
  host_record row;
  if (auto why = parse(text, row)) {
    result.skipped = why;
  } else if (row.id != id) {
    result.skipped = row_error::foreign_key;
  } else {
    result.row = std::move(row);
  }
  return result;
}

listing list(const std::string& dir, std::size_t max_entries) {
  listing result;
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) result.error = last_error();
    return result;
  }
  DIR* stream = ::fdopendir(fd);
  if (!stream) {
    result.error = last_error();
    ::close(fd);
    return result;
  }
  std::size_t examined = 0;
  while (true) {
    errno = 0;
    const dirent* entry = ::readdir(stream);
    if (!entry) {
      if (errno != 0) result.error = last_error();
      break;
    }
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (examined++ == max_entries) {
      result.truncated = true;
      break;
    }
    if (const auto id = id_of(name)) {
      result.ids.push_back(*id);
    } else if (is_temp_name(name)) {
      result.temps.emplace_back(name);
    }
  }
  ::closedir(stream);
  return result;
}

snapshot load(const std::string& dir) {
  snapshot result;
  auto listed = list(dir);
  result.error = listed.error;
  result.truncated = listed.truncated;
  for (const auto& id : listed.ids) {
    auto got = load_row(dir, id);
    if (got.row) result.rows.push_back(std::move(*got.row));
    if (got.skipped) result.skipped.push_back({file_name(id), got.skipped});
  }
  return result;
}

namespace {

// DIR/ID.json replaced whole: `text` written to the temp file, which rename() puts in its place.
// `written`, when given, learns which file that is.
std::error_code write_through_temp(const std::string& dir, const host_record& row,
                                   const std::string& text, written_row* written) {
  const std::string path = path_of(dir, row.id);
  const std::string tmp = dir + "/" + temp_file_name(row.id);
  const auto create_tmp = [&] {
    return ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  };
  // A directory deleted between our mkdir and our open or rename (someone clearing the store)
  // is made again: that is no outage of the store.
  std::error_code ec;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if ((ec = make_directories(dir))) return ec;
    int created = create_tmp();
    // Left half written under this very name (this host, this pid) by an earlier write that
    // died. Removed only then: every unlink, even of nothing, takes the directory's lock, which
    // dozens of masters starting at once on a few cores queue for (bench/RESULTS.md,
    // 2026-12-05).
    if (created < 0 && errno == EEXIST) {
      ::unlink(tmp.c_str());
      created = create_tmp();
    }
    struct stat st {};
    {
      file_descriptor fd(created);
      if (!fd.valid()) {
        ec = last_error();
        if (ec == std::errc::no_such_file_or_directory) continue;
        return ec;
      }
      ec = write_all(fd.get(), text);
      if (!ec && ::fstat(fd.get(), &st) != 0) ec = last_error();
    }
    if (!ec && ::rename(tmp.c_str(), path.c_str()) != 0) ec = last_error();
    if (ec) {
      ::unlink(tmp.c_str());
      if (ec == std::errc::no_such_file_or_directory) continue;
      return ec;
    }
    if (written) *written = {text, row.expires_ms, st.st_dev, st.st_ino};
    return {};
  }
  return ec;
}

// The same text, but for the expiry: what `row` would have been written as with `expires_ms`.
std::string with_expiry(host_record row, std::int64_t expires_ms) {
  row.expires_ms = expires_ms;
  return serialize(row);
}

// Rewrites DIR/ID.json in place with `text`, if it is still the file `last` says was written and
// as long as `text`. False when it is not (removed, replaced, or its length would change) or the
// write failed: the caller writes through the temp file instead.
bool rewrite_in_place(const std::string& path, const std::string& text, const written_row& last) {
  // No O_CREAT: opening an existing name takes no lock of the directory's.
  file_descriptor fd(::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return false;
  struct stat st {};
  // Private and ours, as write_through_temp makes every row file: one made readable by others
  // is replaced, which makes it private again.
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != last.device ||
      st.st_ino != last.inode || st.st_nlink == 0 || (st.st_mode & 07777) != 0600 ||
      st.st_uid != ::geteuid() || static_cast<std::uint64_t>(st.st_size) != text.size())
    return false;
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n =
        ::pwrite(fd.get(), text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;  // the close is the readers' IN_CLOSE_WRITE
}

}  // namespace

std::error_code write_row(const std::string& dir, const host_record& row) {
  return write_through_temp(dir, row, serialize(row), nullptr);
}

std::error_code refresh_row(const std::string& dir, const host_record& row, written_row& last) {
  std::string text = serialize(row);
  if (!last.text.empty() && text.size() == last.text.size() &&
      with_expiry(row, last.expires_ms) == last.text &&
      rewrite_in_place(path_of(dir, row.id), text, last)) {
    last.text = std::move(text);
    last.expires_ms = row.expires_ms;
    return {};
  }
  return write_through_temp(dir, row, text, &last);
}

std::error_code remove_row(const std::string& dir, const host_id& id) {
  if (::unlink(path_of(dir, id).c_str()) != 0 && errno != ENOENT) return last_error();
  return {};
}

bool remove_temp_older_than(const std::string& dir, const std::string& name,
                            std::int64_t cutoff_ms) {
  const std::string path = dir + "/" + name;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  const std::int64_t modified_ms =
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
  return modified_ms < cutoff_ms && ::unlink(path.c_str()) == 0;
}

std::error_code make_directories(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return {};
    return std::make_error_code(std::errc::not_a_directory);
  }
  if (errno != ENOENT) return last_error();
  const std::string parent = parent_of(dir);
  if (parent != dir) {
    if (auto ec = make_directories(parent)) return ec;
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return last_error();
  return {};
}

bool exists_as_non_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

}  // namespace galaxies::registry::file_store
