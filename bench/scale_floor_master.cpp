// One master of the scale floor and the workers it forks (scale_floor.hpp).
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "scale_floor.hpp"
#include "stream_io.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
using node_id = std::uint64_t;  // a worker's pid
constexpr auto worker_stop_grace = 2000ms;

// Whole sends; false once the peer is gone. MSG_NOSIGNAL: a worker that died must not kill its
// master with SIGPIPE.
bool send_whole(int fd, const void* data, std::size_t size) {
  const auto* at = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, at, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    at += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Whole ids out of a byte stream; a partial one stays for the next read.
class id_reader {
 public:
  // One read(2); false at EOF or on an error.
  bool read_from(int fd) {
    const ssize_t n = ::read(fd, buffer_ + held_, sizeof buffer_ - held_);
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return false;
    held_ += static_cast<std::size_t>(n);
    return true;
  }
  std::size_t whole_bytes() const { return held_ / sizeof(node_id) * sizeof(node_id); }
  const char* data() const { return buffer_; }
  void consume_whole() {
    const std::size_t whole = whole_bytes();
    std::memmove(buffer_, buffer_ + whole, held_ - whole);
    held_ -= whole;
  }

 private:
  char buffer_[4096];
  std::size_t held_ = 0;
};

void say_done(const sockaddr_un& to, node_id self) {
  const std::int64_t record[2] = {static_cast<std::int64_t>(self), to_ns(clock::now())};
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  ::sendto(fd, record, sizeof record, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  ::close(fd);
}

// A worker: hello with its pid, then ids until it knows `others` other nodes, which it tells the
// driver; it ends when its master closes the socket (or dies).
[[noreturn]] void run_worker(int master, std::size_t others, const sockaddr_un& done) {
  const auto self = static_cast<node_id>(::getpid());
  if (!send_whole(master, &self, sizeof self)) ::_exit(1);
  id_reader in;
  std::size_t known = 0;
  bool said = false;
  while (in.read_from(master)) {
    for (std::size_t at = 0; at < in.whole_bytes(); at += sizeof(node_id)) {
      node_id who = 0;
      std::memcpy(&who, in.data() + at, sizeof who);
      if (who != self) ++known;
    }
    in.consume_whole();
    if (!said && known >= others) {
      say_done(done, self);
      said = true;
    }
  }
  ::_exit(said ? 0 : 1);
}

std::optional<int> parse_int(std::string_view text) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

class floor_master {
 public:
  explicit floor_master(const scale_floor_options& o)
      : o_(o), peers_dir_(o.dir + "/peers"), done_(unix_address(o.dir + "/done.sock")) {}

  int run() {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    // Blocked before the forks, so that a SIGTERM is never lost; the workers unblock them.
    ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
    fork_workers();
    try {
      serve(stop_signals);
    } catch (...) {
      stop_workers();
      throw;
    }
    stop_workers();
    return 0;
  }

 private:
  void serve(const sigset_t& stop_signals) {
    signals_ = fd_guard(::signalfd(-1, &stop_signals, SFD_CLOEXEC));
    inotify_ = fd_guard(::inotify_init1(IN_CLOEXEC));
    if (signals_.get() < 0 || inotify_.get() < 0) fail_errno("signalfd/inotify_init1");
    // Before the listing: a peer that publishes between the two is seen either way.
    if (::inotify_add_watch(inotify_.get(), peers_dir_.c_str(), IN_MOVED_TO) < 0)
      fail_errno("inotify_add_watch " + peers_dir_);
    int port = 0;
    listener_ = listen_loopback(port, 256);  // every other master may dial at once
    publish(port);
    for (const auto& entry : std::filesystem::directory_iterator(peers_dir_))
      consider(entry.path().filename().string());
    loop();
  }

  struct worker {
    pid_t pid = -1;
    fd_guard socket;
    id_reader hello;
    bool said_hello = false;
  };
  struct link {
    fd_guard socket;
    id_reader in;
  };

  void fork_workers() {
    const std::size_t others =
        static_cast<std::size_t>(o_.hosts) * static_cast<std::size_t>(o_.workers) - 1;
    for (int k = 0; k < o_.workers; ++k) {
      int ends[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) fail_errno("socketpair");
      const pid_t pid = ::fork();
      if (pid < 0) fail_errno("fork");
      if (pid == 0) {
        // Only its own end: a sibling's socket held open here would hide the master's death.
        ::close_range(3, static_cast<unsigned>(ends[1]) - 1, 0);
        ::close_range(static_cast<unsigned>(ends[1]) + 1, ~0U, 0);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        run_worker(ends[1], others, done_);
      }
      ::close(ends[1]);
      workers_.emplace_back();
      workers_.back().pid = pid;
      workers_.back().socket = fd_guard(ends[0]);
    }
  }

  // Written, then renamed into the watched directory: a reader never sees half a file.
  void publish(int port) {
    const std::string name = std::to_string(o_.index);
    const std::string temporary = o_.dir + "/" + name + ".tmp";
    {
      std::ofstream out(temporary);
      out << port;
      if (!out) throw std::runtime_error("cannot write " + temporary);
    }
    std::filesystem::rename(temporary, peers_dir_ + "/" + name);
  }

  // A peer's port file: the one with the higher index dials, so each pair links once.
  void consider(const std::string& name) {
    const auto index = parse_int(name);
    if (!index || *index < 0 || *index >= o_.index || !dialed_.insert(*index).second) return;
    std::ifstream in(peers_dir_ + "/" + name);
    std::string text;
    in >> text;
    const auto port = parse_int(text);
    if (!port || *port < 1 || *port > 65535)
      throw std::runtime_error("bad port file " + peers_dir_ + "/" + name);
    add_link(connect_loopback(*port));
  }

  void add_link(fd_guard socket) {
    set_nodelay(socket.get());
    if (batch_ready() && !send_whole(socket.get(), batch_.data(), batch_.size())) return;
    links_.emplace_back();
    links_.back().socket = std::move(socket);
  }

  bool batch_ready() const { return batch_.size() == workers_.size() * sizeof(node_id); }

  void on_hello(worker& w) {
    if (!w.hello.read_from(w.socket.get())) {
      w.socket = fd_guard();  // died before its hello
      return;
    }
    if (w.hello.whole_bytes() == 0) return;
    w.said_hello = true;
    batch_.insert(batch_.end(), w.hello.data(), w.hello.data() + sizeof(node_id));
    if (!batch_ready()) return;
    to_workers(batch_.data(), batch_.size());
    for (auto& l : links_) send_whole(l.socket.get(), batch_.data(), batch_.size());
  }

  void to_workers(const char* ids, std::size_t size) {
    for (auto& w : workers_)
      if (w.socket.get() >= 0) send_whole(w.socket.get(), ids, size);
  }

  void on_link(link& l) {
    if (!l.in.read_from(l.socket.get())) {
      l.socket = fd_guard();
      return;
    }
    to_workers(l.in.data(), l.in.whole_bytes());
    l.in.consume_whole();
  }

  void on_inotify() {
    alignas(inotify_event) char buffer[4096];
    const ssize_t n = ::read(inotify_.get(), buffer, sizeof buffer);
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      if (event->len > 0) consider(event->name);
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }

  // Until SIGTERM (or SIGINT).
  void loop() {
    std::vector<pollfd> fds;
    for (;;) {
      fds.clear();
      fds.push_back({signals_.get(), POLLIN, 0});
      fds.push_back({listener_.get(), POLLIN, 0});
      fds.push_back({inotify_.get(), POLLIN, 0});
      for (const auto& w : workers_)  // after its hello, a worker only ever closes
        fds.push_back({w.said_hello ? -1 : w.socket.get(), POLLIN, 0});
      for (const auto& l : links_) fds.push_back({l.socket.get(), POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        fail_errno("poll");
      }
      if (fds[0].revents != 0) return;
      if (fds[1].revents != 0) add_link(accept_one(listener_.get()));
      if (fds[2].revents != 0) on_inotify();
      std::size_t at = 3;
      for (auto& w : workers_)
        if (fds[at++].revents != 0) on_hello(w);
      // Links added above were not polled; their entries come after the polled ones.
      for (std::size_t l = 0; at < fds.size(); ++l, ++at)
        if (fds[at].revents != 0) on_link(links_[l]);
    }
  }

  // Closed sockets end the workers; any still there after the grace is killed. Every one is
  // reaped by its PID.
  void stop_workers() {
    for (auto& w : workers_) w.socket = fd_guard();
    const auto give_up = clock::now() + worker_stop_grace;
    std::set<pid_t> left;
    for (const auto& w : workers_) left.insert(w.pid);
    while (!left.empty() && clock::now() < give_up) {
      for (auto it = left.begin(); it != left.end();)
        it = ::waitpid(*it, nullptr, WNOHANG) == 0 ? std::next(it) : left.erase(it);
      if (!left.empty()) std::this_thread::sleep_for(5ms);
    }
    for (pid_t pid : left) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }

  scale_floor_options o_;
  std::string peers_dir_;
  sockaddr_un done_;  // the driver's socket
  fd_guard signals_;
  fd_guard inotify_;
  fd_guard listener_;
  std::vector<worker> workers_;
  std::vector<link> links_;
  std::vector<char> batch_;  // this host's worker ids, complete once every worker said hello
  std::set<int> dialed_;
};

}  // namespace

int run_scale_floor_master(const scale_floor_options& options) {
  try {
    if (options.hosts < 1 || options.workers < 1 || options.index < 0 ||
        options.index >= options.hosts)
      throw std::runtime_error("bad index, hosts or workers");
    return floor_master(options).run();
  } catch (const std::exception& e) {
    std::cerr << "galaxies bench: scale floor master " << options.index << ": " << e.what()
              << std::endl;
    return 1;
  }
}

}  // namespace galaxies::bench
