// A TCP relay on a free 127.0.0.1 port to 127.0.0.1:target, to cut one client off from a store
// that the others still reach. Threads of its own (one accepting, two per connection); all
// members are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace galaxies::test {

class loopback_proxy {
 public:
  explicit loopback_proxy(std::uint16_t target);
  ~loopback_proxy();  // closes everything and joins its threads
  loopback_proxy(const loopback_proxy&) = delete;
  loopback_proxy& operator=(const loopback_proxy&) = delete;

  std::uint16_t port() const { return port_; }
  // Closes every relayed connection and, until heal(), every new one as soon as it is accepted:
  // to the client, the store went away.
  void cut();
  void heal();

 private:
  struct link;
  void accept_loop();
  void relay(const std::shared_ptr<link>& l, bool upstream);

  std::uint16_t target_;
  std::uint16_t port_ = 0;
  int listener_ = -1;
  std::mutex mutex_;
  bool cut_ = false;
  bool closing_ = false;
  std::vector<std::shared_ptr<link>> links_;
  std::vector<std::thread> relays_;
  std::thread acceptor_;
};

}  // namespace galaxies::test
