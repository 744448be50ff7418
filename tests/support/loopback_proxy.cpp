#include "support/loopback_proxy.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "support/host_tools.hpp"
#include "support/store_server.hpp"

namespace galaxies::test {
namespace {

using tools::unique_fd;
constexpr int start_attempts = 5;

}  // namespace

struct loopback_proxy::link {
  unique_fd client;
  unique_fd server;
  // Both directions end together: a relay that stops shuts both sockets, waking the other.
  void shut() {
    ::shutdown(client.get(), SHUT_RDWR);
    ::shutdown(server.get(), SHUT_RDWR);
  }
};

loopback_proxy::loopback_proxy(std::uint16_t target) : target_(target) {
  for (int attempt = 0; attempt < start_attempts && listener_ < 0; ++attempt) {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) throw std::system_error(errno, std::system_category(), "socket");
    const int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(free_loopback_port());
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) continue;
    if (::listen(fd.get(), 64) != 0)
      throw std::system_error(errno, std::system_category(), "listen");
    port_ = ntohs(addr.sin_port);
    listener_ = fd.release();
  }
  if (listener_ < 0) throw std::runtime_error("loopback_proxy: no free port");
  acceptor_ = std::thread([this] { accept_loop(); });
}

loopback_proxy::~loopback_proxy() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
    for (auto& l : links_) l->shut();
  }
  ::shutdown(listener_, SHUT_RDWR);  // wakes the blocked accept()
  acceptor_.join();
  ::close(listener_);
  // No relay thread starts after the acceptor ended.
  for (auto& t : relays_) t.join();
}

void loopback_proxy::cut() {
  std::lock_guard lock(mutex_);
  cut_ = true;
  for (auto& l : links_) l->shut();
  links_.clear();
}

void loopback_proxy::heal() {
  std::lock_guard lock(mutex_);
  cut_ = false;
}

void loopback_proxy::accept_loop() {
  while (true) {
    unique_fd client(::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC));
    if (client.get() < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down by the destructor
    }
    {
      std::lock_guard lock(mutex_);
      if (closing_) return;
      if (cut_) continue;  // closed at once: the client sees the store go away
    }
    unique_fd server(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(target_);
    // Loopback: a refused or accepted connect completes at once, no timeout needed.
    if (server.get() < 0 ||
        ::connect(server.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
      continue;
    auto l = std::make_shared<link>();
    l->client = std::move(client);
    l->server = std::move(server);
    std::lock_guard lock(mutex_);
    if (closing_) return;
    if (cut_) continue;
    links_.push_back(l);
    relays_.emplace_back([this, l] { relay(l, true); });
    relays_.emplace_back([this, l] { relay(l, false); });
  }
}

void loopback_proxy::relay(const std::shared_ptr<link>& l, bool upstream) {
  const int from = upstream ? l->client.get() : l->server.get();
  const int to = upstream ? l->server.get() : l->client.get();
  char buf[65536];
  while (true) {
    const ssize_t n = ::recv(from, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ssize_t done = 0;
    while (done < n) {
      const ssize_t w = ::send(to, buf + done, static_cast<std::size_t>(n - done), MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      done += w;
    }
    if (done < n) break;
  }
  l->shut();
}

}  // namespace galaxies::test
