// A host played by the test over plain TCP: it dials a real master, proves the cluster secret
// when given one, and then says whatever the test wants, true or not (an insider gone bad, or a
// buggy peer). Blocking calls with poll-bounded reads: it does not depend on the library's
// transport.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "galaxies/ids.hpp"
#include "support/raw_connection.hpp"
#include "wire/control.hpp"

namespace galaxies::test {

class fake_host {
 public:
  struct options {
    std::string address;  // the master's "127.0.0.1:port"
    std::string cluster;
    uuid target;                        // the master's host id
    std::optional<std::string> secret;  // proves it when set
    host_id self = host_id::random();
    std::string hostname = "fake";
    std::optional<std::uint32_t> heartbeat_ms{};  // none: the master expects no heartbeats
  };

  explicit fake_host(options opts);

  // Sends the hello (and the proof, when challenged); true once welcomed.
  bool join(std::chrono::milliseconds deadline = std::chrono::seconds(5));
  // The refusal that ended the handshake, if it was refused.
  const std::optional<wire::refuse>& refusal() const { return refusal_; }

  void announce(const std::vector<node_id>& nodes, bool snapshot = true);
  bool send(std::span<const std::byte> bytes) { return conn_.write(bytes); }
  // Reads until the master closes the link or `deadline` passes; true if it closed.
  bool closed_within(std::chrono::milliseconds deadline);
  // What arrived since the handshake (reads what is there, up to `deadline`).
  frame_bytes read_for(std::chrono::milliseconds deadline);

  const host_id& id() const { return opts_.self; }
  raw_connection& connection() { return conn_; }

 private:
  options opts_;
  raw_connection conn_;
  frame_bytes pending_;  // bytes read past the handshake
  std::optional<wire::refuse> refusal_;
};

}  // namespace galaxies::test
