#include "transport/connector.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <cstring>
#include <memory>

#include "transport/endpoint.hpp"
#include "transport/socket_setup.hpp"

namespace galaxies::transport {

void connect_tcp(const asio::any_io_executor& executor, std::string_view address,
                 std::chrono::milliseconds timeout, connect_handler done) {
  const auto endpoint = parse_endpoint(address);
  if (!endpoint)
    return asio::post(executor, [done = std::move(done), executor] {
      done(std::make_error_code(std::errc::invalid_argument), socket(executor));
    });
  auto tcp = std::make_shared<asio::ip::tcp::socket>(executor);
  std::error_code ec;
  tcp->open(endpoint->protocol(), ec);
  if (ec)
    return asio::post(executor,
                      [done = std::move(done), executor, ec] { done(ec, socket(executor)); });
  set_cloexec(tcp->native_handle());
  auto timer = std::make_shared<asio::steady_timer>(executor, timeout);
  timer->async_wait([tcp](std::error_code wait_error) {
    if (!wait_error) tcp->close(wait_error);  // the connect completes with operation_aborted
  });
  tcp->async_connect(*endpoint, [tcp, timer, executor, done = std::move(done)](std::error_code ec) {
    timer->cancel();
    if (ec) return done(ec, socket(executor));
    tune_host_link(tcp->native_handle());
    const int family = tcp->local_endpoint(ec).protocol().family();
    done({}, socket(executor, asio::generic::stream_protocol(family, IPPROTO_TCP), tcp->release()));
  });
}

remote_address remote_of(const socket& s) {
  std::error_code ec;
  const auto remote = s.remote_endpoint(ec);
  if (ec) return {"unknown address", false};
  const auto* sa = static_cast<const sockaddr*>(remote.data());
  if (sa->sa_family == AF_UNIX) return {"local socket", true};
  if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) return {"unknown address", false};
  asio::ip::tcp::endpoint ep;
  std::memcpy(ep.data(), remote.data(), std::min<std::size_t>(remote.size(), ep.capacity()));
  ep.resize(remote.size());
  auto ip = ep.address();
  if (ip.is_v6() && ip.to_v6().is_v4_mapped())
    ip = asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
  return {format_endpoint(ep), ip.is_loopback()};
}

}  // namespace galaxies::transport
