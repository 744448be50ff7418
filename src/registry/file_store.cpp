#include "registry/file_store.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "base/limits.hpp"
#include "registry/row_json.hpp"

namespace galaxies::registry::file_store {
namespace {

using json = nlohmann::json;

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
  void reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Reads the whole file into `text`; ENOENT comes back as an error for the caller to judge.
std::error_code read_all(const std::string& path, std::string& text, bool& too_large) {
  // O_NONBLOCK: a FIFO planted at PATH must not hang start-up; it is then refused as not regular.
  file_descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return last_error();
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return last_error();
  if (!S_ISREG(st.st_mode)) return std::make_error_code(std::errc::invalid_argument);
  char buf[8192];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    if (n == 0) return {};
    if (text.size() + static_cast<std::size_t>(n) > max_file_size) {
      too_large = true;
      return {};
    }
    text.append(buf, static_cast<std::size_t>(n));
  }
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

// Writes a complete new version beside PATH and renames it over PATH, so readers never see a
// partial file. The tmp name carries the pid; within one process the lock serialises writers.
// O_EXCL | O_NOFOLLOW: in a shared directory a planted symlink must not redirect the write.
std::error_code replace(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // left behind by a crash of an earlier process with our pid
  std::error_code ec;
  {
    file_descriptor fd(
        ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) return last_error();
    ec = write_all(fd.get(), text);
  }
  if (!ec && ::rename(tmp.c_str(), path.c_str()) != 0) ec = last_error();
  if (ec) ::unlink(tmp.c_str());
  return ec;
}

// Takes PATH.lock if no other writer holds it, without waiting. flock (not fcntl) locks belong to
// the open file description, so two registries in one process exclude each other too.
std::error_code try_lock(const std::string& path, file_descriptor& out) {
  const std::string lock_path = path + ".lock";
  out.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.valid()) return last_error();
  while (::flock(out.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return std::make_error_code(std::errc::resource_unavailable_try_again);
    if (errno != EINTR) return last_error();
  }
  return {};
}

}  // namespace

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

bool parse(std::string_view text, std::vector<host_record>& rows,
           std::vector<skipped_row>* skipped) {
  rows.clear();
  if (skipped) skipped->clear();
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return false;
  const auto format = doc.find("format");
  if (format == doc.end() || !format->is_number_integer() ||
      format->get<std::int64_t>() != format_version)
    return false;
  const auto hosts = doc.find("hosts");
  if (hosts == doc.end() || !hosts->is_array()) return false;
  std::unordered_map<host_id, std::size_t> position;
  for (std::size_t index = 0; index < hosts->size(); ++index) {
    const auto& item = (*hosts)[index];
    host_record row;
    if (const auto why = parse_row(item, row, expiry_field::required)) {
      // One bad row does not hide the others.
      if (skipped && skipped->size() < limits::max_registry_hosts) {
        const auto id = item.is_object() ? item.find("id") : item.end();
        // Bounded: the log shows 80 bytes of it anyway.
        skipped->push_back({id != item.end() && id->is_string()
                                ? id->get_ref<const std::string&>().substr(0, 128)
                                : "#" + std::to_string(index),
                            why});
      }
      continue;
    }
    // An index, not a search per row: a file of 60 000 rows must not cost 60 000^2 / 2 steps.
    const auto [same, added] = position.try_emplace(row.id, rows.size());
    if (added) {
      rows.push_back(std::move(row));
    } else if (row.expires_ms > rows[same->second].expires_ms) {
      rows[same->second] = std::move(row);
    }
  }
  return true;
}

std::string serialize(const std::vector<host_record>& rows) {
  json hosts = json::array();
  for (const auto& row : rows) {
    hosts.push_back(row_to_json(row, expiry_field::required));
  }
  // Indented: people read this file when debugging discovery. Invalid UTF-8 (a hostname, a
  // path) is replaced rather than thrown: a write must never take down the event loop.
  return json{{"format", format_version}, {"hosts", std::move(hosts)}}.dump(
             1, ' ', false, json::error_handler_t::replace) +
         "\n";
}

snapshot load(const std::string& path) {
  snapshot result;
  std::string text;
  bool too_large = false;
  if (auto ec = read_all(path, text, too_large)) {
    if (ec != std::errc::no_such_file_or_directory) result.error = ec;
    return result;
  }
  if (too_large || !parse(text, result.rows, &result.skipped)) {
    result.rows.clear();
    result.skipped.clear();
    result.corrupt = true;
  }
  return result;
}

std::error_code update(const std::string& path, std::int64_t now_ms,
                       const std::function<bool(std::vector<host_record>&)>& edit,
                       snapshot* result) {
  if (auto ec = make_directories(parent_of(path))) return ec;
  file_descriptor held(-1);
  if (auto ec = try_lock(path, held)) return ec;

  snapshot current = load(path);
  if (current.error) return current.error;
  const auto before = current.rows.size();
  std::erase_if(current.rows, [&](const host_record& r) { return r.expires_ms < now_ms; });
  const bool pruned = current.rows.size() != before;
  const bool edited = edit(current.rows);
  if (edited || pruned || current.corrupt) {
    if (auto ec = replace(path, serialize(current.rows))) return ec;
    if (current.corrupt) spdlog::warn("registry file:{}: replaced a corrupt file", path);
  }
  if (result) *result = std::move(current);
  return {};  // `held` unlocks on close
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

}  // namespace galaxies::registry::file_store
