// delay_proxy: relays TCP connections from --listen to --connect, holding every chunk
// --delay-ms milliseconds, order kept. Prints "listening on IP:PORT" once ready (port 0 picks a
// free port); runs until SIGTERM or SIGINT. Run it inside a test host's namespace:
//
//   ip netns exec gx123n1-a delay_proxy --listen 10.77.0.1:7001 --connect 10.77.0.1:7000 --delay-ms
//   100
#include <CLI/CLI.hpp>
#include <asio/signal_set.hpp>
#include <iostream>

#include "delay_proxy.hpp"

namespace {

asio::ip::tcp::endpoint parse(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("expected IP:PORT, got " + text);
  std::string host = text.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return {asio::ip::make_address(host),
          static_cast<unsigned short>(std::stoul(text.substr(colon + 1)))};
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  std::string connect;
  int delay_ms = 100;
  CLI::App app{"delay_proxy: a TCP proxy that holds every chunk N ms, order kept"};
  app.add_option("--listen", listen, "IP:PORT to accept on (port 0: any free port)");
  app.add_option("--connect", connect, "IP:PORT to relay to")->required();
  app.add_option("--delay-ms", delay_ms, "delay of every chunk, each way")
      ->check(CLI::Range(0, 600000));
  CLI11_PARSE(app, argc, argv);
  try {
    asio::io_context io(1);
    galaxies::test::delay_proxy proxy(io, parse(listen), parse(connect),
                                      std::chrono::milliseconds(delay_ms));
    proxy.start();
    const auto local = proxy.local_endpoint();
    std::cout << "listening on " << local.address().to_string() << ":" << local.port() << std::endl;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) {
      proxy.stop();
      io.stop();
    });
    io.run();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "delay_proxy: error: " << e.what() << "\n";
    return 1;
  }
}
