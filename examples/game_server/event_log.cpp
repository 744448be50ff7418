#include "event_log.hpp"

#include <unistd.h>

#include <chrono>

namespace game {
namespace {

// One write(2) per line: the workers of a host share its stdout (a pipe for demo_director), and a
// write of at most PIPE_BUF bytes is never interleaved with another process's.
void write_line(std::string line) {
  line.push_back('\n');
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n <= 0) return;  // stdout gone (the director stopped): nothing useful to do about it
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::string short_id(const std::string& id) {
  return id.substr(0, 8);
}

// A value for the eye: node and host ids (36 characters) shortened to their first 8 digits.
std::string text_of(const nlohmann::json& value) {
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    return text.size() == 36 ? short_id(text) : text;
  }
  if (value.is_array()) {
    std::string out = "[";
    for (const auto& item : value) out += (out.size() > 1 ? "," : "") + text_of(item);
    return out + "]";
  }
  return value.dump();
}

}  // namespace

long long steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void event_log::emit(const std::string& event, nlohmann::json fields) const {
  if (json_) {
    fields["ev"] = event;
    fields["me"] = me_;
    fields["host_label"] = host_label_;
    fields["pid"] = ::getpid();
    fields["t_us"] = steady_us();
    write_line(fields.dump());
    return;
  }
  // Text: "[A 1234 3f2a9c1d] chat player=alice room=3 ..."; node ids shortened for the eye.
  std::string line =
      "[" + host_label_ + " " + std::to_string(::getpid()) + " " + short_id(me_) + "] " + event;
  for (const auto& [key, value] : fields.items()) line += " " + key + "=" + text_of(value);
  write_line(std::move(line));
}

}  // namespace game
