// A master's HTTP address (`galaxies host --http`): /metrics, /status.json and the web view,
// served by cpp-httplib on threads of their own from the snapshot board, so that no client can
// stall the router's loop. Only GET; every response bounded by a snapshot's size.
// Threading: construct, address() and stop() from one thread; the server runs on its own.
#pragma once

#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

namespace galaxies::monitor {

class snapshot_board;

class http_service {
 public:
  // Binds `listen` ("ip:port", numeric; port 0 picks one) at once and starts serving. Throws
  // std::invalid_argument for a malformed address or, unless `allow_any_address`, one that is not
  // loopback; std::runtime_error when it cannot bind.
  http_service(const std::string& listen, bool allow_any_address,
               std::shared_ptr<snapshot_board> board);
  ~http_service();
  http_service(const http_service&) = delete;
  http_service& operator=(const http_service&) = delete;

  // Where it listens, "ip:port" with the bound port.
  const std::string& address() const noexcept { return address_; }
  // Stops accepting, ends the connections and joins the threads; idempotent.
  void stop();

 private:
  void routes();

  std::shared_ptr<snapshot_board> board_;
  std::unique_ptr<httplib::Server> server_;
  std::string address_;
  std::thread thread_;
};

}  // namespace galaxies::monitor
