#include "tcp_baseline.hpp"

#include "stream_tests.hpp"

namespace galaxies::bench {
namespace {

stream_pair connected_pair() {
  int port = 0;
  fd_guard listener = listen_loopback(port);
  fd_guard client = connect_loopback(port);
  fd_guard server = accept_one(listener.get());
  set_nodelay(client.get());
  set_nodelay(server.get());
  return {std::move(client), std::move(server)};
}

}  // namespace

throughput_result tcp_throughput(const test_spec& spec) {
  std::vector<stream_pair> pairs;
  for (int i = 0; i < spec.pairs; ++i) pairs.push_back(connected_pair());
  return stream_throughput(pairs, spec);
}

latency_result tcp_latency(const test_spec& spec) {
  auto pair = connected_pair();
  return stream_latency(pair, spec);
}

}  // namespace galaxies::bench
