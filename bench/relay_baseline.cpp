#include <unistd.h>

#include <charconv>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "relay.hpp"
#include "stream_tests.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
constexpr auto startup_timeout = 10s;
constexpr char ready_byte = 'R';

// The far relay's port, from the file it writes; what a child wrote is checked, not trusted.
int read_port(const std::string& file, child_process& writer) {
  const auto give_up = clock::now() + startup_timeout;
  for (;;) {
    std::ifstream in(file);
    if (in) {
      char text[16] = {};
      in.read(text, sizeof text - 1);
      int port = 0;
      const auto [end, ec] = std::from_chars(text, text + in.gcount(), port);
      if (ec != std::errc() || port < 1 || port > 65535 ||
          (end != text + in.gcount() && *end != '\n'))
        throw std::runtime_error("the relay wrote a bad port file: " + file);
      return port;
    }
    if (!writer.running()) throw std::runtime_error("the far relay exited at start-up");
    if (clock::now() > give_up) throw std::runtime_error("timed out waiting for the far relay");
    std::this_thread::sleep_for(5ms);
  }
}

// Connects the receiver, then the sender, and passes one byte through: the three hops exist
// before the next pair is connected (which is how the relays pair them up).
stream_pair connect_pair(const std::string& dir) {
  stream_pair pair;
  pair.receiver = connect_unix(dir + "/relay-far.sock", startup_timeout);
  pair.sender = connect_unix(dir + "/relay-near.sock", startup_timeout);
  set_io_timeout(pair.receiver.get(), startup_timeout);
  write_all(pair.sender.get(), &ready_byte, 1);
  char got = 0;
  if (::read(pair.receiver.get(), &got, 1) != 1 || got != ready_byte)
    throw std::runtime_error("the relay did not pass the first byte through");
  return pair;
}

}  // namespace

relay_baseline::relay_baseline(const std::string& dir) : dir_(dir) {
  const std::string port_file = dir + "/relay-far.port";
  far_ = start_this_program(
      {relay_subcommand, "--unix", dir + "/relay-far.sock", "--port-file", port_file});
  const int port = read_port(port_file, *far_);
  near_ = start_this_program({relay_subcommand, "--unix", dir + "/relay-near.sock",
                              "--connect-port", std::to_string(port)});
}

throughput_result relay_baseline::throughput(const test_spec& spec) {
  std::vector<stream_pair> pairs;
  for (int i = 0; i < spec.pairs; ++i) pairs.push_back(connect_pair(dir_));
  return stream_throughput(pairs, spec);
}

latency_result relay_baseline::latency(const test_spec& spec) {
  auto pair = connect_pair(dir_);
  return stream_latency(pair, spec);
}

void relay_baseline::check_running() {
  if (!far_->running() || !near_->running())
    throw std::runtime_error("a relay process exited early");
}

bool relay_baseline::stop(std::chrono::milliseconds grace) {
  const bool near_clean = near_->stop(grace);
  return far_->stop(grace) && near_clean;
}

}  // namespace galaxies::bench
