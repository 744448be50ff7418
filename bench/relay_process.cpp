// One relay process: a copy loop per direction per client, nothing else.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "relay.hpp"
#include "stream_io.hpp"

namespace galaxies::bench {
namespace {

struct connection {
  fd_guard client;  // Unix
  fd_guard link;    // TCP to the other relay
};

// Copies until end of stream (then passes the half-close on) or an error (then ends both ways).
void pump(int from, int to) {
  std::vector<char> buffer(read_size);
  for (;;) {
    const ssize_t n = ::read(from, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      ::shutdown(to, SHUT_WR);
      return;
    }
    try {
      if (n < 0) fail_errno("read");
      write_all(to, buffer.data(), static_cast<std::size_t>(n));
    } catch (const std::exception&) {
      ::shutdown(from, SHUT_RDWR);
      ::shutdown(to, SHUT_RDWR);
      return;
    }
  }
}

// Both directions on threads of their own; the fds close when both are done.
void relay(connection c) {
  auto shared = std::make_shared<connection>(std::move(c));
  std::thread([shared] { pump(shared->client.get(), shared->link.get()); }).detach();
  std::thread([shared] { pump(shared->link.get(), shared->client.get()); }).detach();
}

// Listens on 127.0.0.1:0 and publishes the port (write, then rename: the driver never reads a
// half-written file).
fd_guard listen_tcp(const std::string& port_file) {
  int port = 0;
  fd_guard listener = listen_loopback(port);
  const std::string temporary = port_file + ".tmp";
  {
    std::ofstream out(temporary);
    out << port << "\n";
    if (!out) throw std::runtime_error("cannot write " + temporary);
  }
  std::filesystem::rename(temporary, port_file);
  return listener;
}

}  // namespace

int run_relay(const relay_options& options) {
  try {
    fd_guard clients = listen_unix(options.unix_path);
    fd_guard links = options.port_file.empty() ? fd_guard() : listen_tcp(options.port_file);
    for (;;) {
      // The driver connects one pair at a time, receiver first: the far relay's n-th client
      // belongs with the n-th link the near relay dials.
      connection c;
      c.client = accept_one(clients.get());
      c.link = links.get() >= 0 ? accept_one(links.get()) : connect_loopback(options.connect_port);
      set_nodelay(c.link.get());
      relay(std::move(c));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "galaxies bench-relay: %s\n", e.what());
    return 1;
  }
}

}  // namespace galaxies::bench
